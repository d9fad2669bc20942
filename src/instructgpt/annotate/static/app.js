// The labelling page: shows one item, collects a ranking with ties (drag and drop, or keys 1..K on the
// focused answer), a 1..7 score and flags per answer and a comment, and talks to the /api routes of
// server.py. No framework and no network beyond this server.
"use strict";

const TEXT = {
  en: {
    title: "Rank the answers", annotator: "Annotator", start: "Start", prompt: "Prompt",
    ranking: "Ranking (best first; several answers in one row are a tie)", comment: "Comment",
    submit: "Submit (Ctrl+Enter)", skip: "Skip (Alt+S)", undo: "Undo last (Alt+U)", stats: "Progress and agreement",
    help: "Keys: Tab or ↑/↓ move between answers; 1..K put the focused answer in that rank.",
    answer: "Answer", rank: "rank", score: "Quality (1–7)", flagsLabel: "Flags", unranked: "Rank every answer first.",
    name: "Enter your name first.", done: "No more items for you. Thank you!", saved: "Saved.", progress: "done", you: "you", all: "all",
    who: "annotator", labelled: "labelled", skipped: "skipped", perHour: "labels / hour",
    agreement: "Agreement on {n} doubly-labelled items: pairwise {p}, Kendall's τ {t}", noAgreement: "No doubly-labelled item yet.",
    fails_instruction: "fails to follow the instruction", hallucination: "hallucinates",
    inappropriate_for_assistant: "inappropriate for a customer assistant", harmful: "harmful",
    sexual_or_violent: "sexual or violent content", personal_information: "personal information",
  },
  zh: {
    title: "为回答排序", annotator: "标注者", start: "开始", prompt: "提示",
    ranking: "排序（最好的在前；同一行中的回答并列）", comment: "备注",
    submit: "提交 (Ctrl+Enter)", skip: "跳过 (Alt+S)", undo: "撤销上一条 (Alt+U)", stats: "进度与一致性",
    help: "按键：Tab 或 ↑/↓ 在回答间移动；1..K 把当前回答放到该名次。",
    answer: "回答", rank: "名次", score: "质量 (1–7)", flagsLabel: "标记", unranked: "请先为每个回答排序。",
    name: "请先输入你的名字。", done: "没有更多条目了，谢谢！", saved: "已保存。", progress: "已完成", you: "你", all: "全部",
    who: "标注者", labelled: "已标注", skipped: "已跳过", perHour: "每小时条数",
    agreement: "{n} 个双人标注条目的一致性：成对 {p}，Kendall τ {t}", noAgreement: "还没有双人标注的条目。",
    fails_instruction: "未遵循指令", hallucination: "编造事实", inappropriate_for_assistant: "不适合客服助手",
    harmful: "有害", sexual_or_violent: "含色情或暴力内容", personal_information: "含个人信息",
  },
};
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const params = new URLSearchParams(location.search);
const state = { item: null, tier: [], scores: [], flags: [], stats: null, lang: localStorage.getItem("lang") || "en" };
const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[state.lang][key] || key;

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (params.get("token")) headers.Authorization = "Bearer " + params.get("token");
  const reply = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

function say(text) { $("message").textContent = text; }
function annotator() { return $("annotator").value.trim(); }

function translate() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  if (state.item) render();
}

async function next() {
  if (!annotator()) { say(t("name")); return; }
  localStorage.setItem("annotator", annotator());
  const item = await api("/api/next?annotator=" + encodeURIComponent(annotator()));
  state.item = item.item === null ? null : item;
  if (state.item) {
    const k = item.k;
    state.tier = Array(k).fill(null);
    state.scores = Array(k).fill(null);
    state.flags = Array.from({ length: k }, () => []);
    $("comment").value = "";
  }
  render();
  await stats();
  if (!state.item) say(t("done"));
}

function renderPrompt() {
  const box = $("prompt");
  box.replaceChildren();
  for (const message of state.item ? state.item.prompt : []) {
    const div = document.createElement("div");
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = message.role + ": ";
    div.append(role, message.content);
    box.append(div);
  }
}

function renderTiers() {
  const list = $("tiers");
  list.replaceChildren();
  const k = state.item ? state.item.k : 0;
  for (let tier = 0; tier < k; tier++) {
    const li = document.createElement("li");
    li.dataset.tier = tier;
    li.addEventListener("dragover", (e) => { e.preventDefault(); li.classList.add("over"); });
    li.addEventListener("dragleave", () => li.classList.remove("over"));
    li.addEventListener("drop", (e) => { e.preventDefault(); place(Number(e.dataTransfer.getData("text/plain")), tier); });
    state.tier.forEach((placed, position) => {
      if (placed !== tier) return;
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.draggable = true;
      chip.textContent = LETTERS[position];
      chip.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", String(position)));
      li.append(chip);
    });
    list.append(li);
  }
}

function scoreField(position) {
  const set = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = t("score");
  set.append(legend);
  for (let value = 1; value <= 7; value++) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "score" + position;
    radio.value = value;
    radio.checked = state.scores[position] === value;
    radio.addEventListener("change", () => { state.scores[position] = value; });
    label.append(radio, String(value));
    set.append(label);
  }
  return set;
}

function flagField(position) {
  const set = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = t("flagsLabel");
  set.append(legend);
  for (const flag of state.item.flags) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.flag = flag;
    box.checked = state.flags[position].includes(flag);
    box.addEventListener("change", () => {
      const kept = state.flags[position].filter((f) => f !== flag);
      state.flags[position] = box.checked ? [...kept, flag] : kept;
    });
    label.append(box, t(flag));
    set.append(label);
  }
  return set;
}

function answerCard(text, position) {
  const card = document.createElement("article");
  card.className = "answer" + (state.tier[position] === null ? "" : " ranked");
  card.tabIndex = 0;
  card.draggable = true;
  card.dataset.position = position;
  card.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", String(position)));
  const head = document.createElement("div");
  head.className = "head";
  const rank = state.tier[position] === null ? "–" : String(state.tier[position] + 1);
  const name = document.createElement("span");
  name.textContent = t("answer") + " " + LETTERS[position];
  const placed = document.createElement("span");
  placed.textContent = t("rank") + ": " + rank;
  head.append(name, placed);
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  card.append(head, body, scoreField(position), flagField(position));
  return card;
}

function render() {
  renderPrompt();
  renderTiers();
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.position : undefined;
  $("answers").replaceChildren(...(state.item ? state.item.answers.map(answerCard) : []));
  if (focused !== undefined) {
    const again = document.querySelector(`.answer[data-position="${focused}"]`);
    if (again) again.focus();
  }
}

function place(position, tier) {
  state.tier[position] = tier;
  render();
}

async function submit() {
  if (!state.item) return;
  if (state.tier.includes(null)) { say(t("unranked")); return; }
  const tiers = [];
  for (let tier = 0; tier < state.item.k; tier++) {
    const members = state.tier.flatMap((placed, position) => (placed === tier ? [position] : []));
    if (members.length) tiers.push(members);
  }
  const body = { annotator: annotator(), item: state.item.item, tiers, scores: state.scores, flags: state.flags, comment: $("comment").value };
  try {
    await api("/api/label", body);
    say(t("saved"));
    await next();
  } catch (err) { say(err.message); }
}

async function skip() {
  if (!state.item) return;
  try { await api("/api/skip", { annotator: annotator(), item: state.item.item }); await next(); } catch (err) { say(err.message); }
}

async function undo() {
  try { await api("/api/undo", { annotator: annotator() }); await next(); } catch (err) { say(err.message); }
}

async function stats() {
  state.stats = await api("/api/stats");
  showStats();
}

function showStats() {  // also on a change of language, from the last answer
  const data = state.stats;
  if (!data) return;
  const mine = data.annotators[annotator()] || { labelled: 0, skipped: 0 };
  $("progress").textContent = `${t("progress")}: ${t("you")} ${mine.labelled} · ${t("all")} ${data.labels} / ${data.wanted}`;
  const number = (x, digits) => (x === null || x === undefined ? "–" : x.toFixed(digits));
  const head = [t("who"), t("labelled"), t("skipped"), t("perHour")];
  const rows = Object.entries(data.annotators).map(([name, a]) => [name, a.labelled, a.skipped, number(a.per_hour, 1)]);
  const table = document.createElement("table");
  for (const [i, cells] of [head, ...rows].entries()) {
    const tr = table.insertRow();
    for (const cell of cells) tr.appendChild(document.createElement(i ? "td" : "th")).textContent = cell;
  }
  const agree = data.agreement;
  const line = document.createElement("p");
  line.textContent = agree.items
    ? t("agreement").replace("{n}", agree.items).replace("{p}", number(agree.pair_agreement, 3)).replace("{t}", number(agree.kendall_tau, 3))
    : t("noAgreement");
  $("stats").replaceChildren(table, line);
}

function onKey(e) {
  if (e.ctrlKey && e.key === "Enter") { e.preventDefault(); submit(); return; }
  if (e.altKey && e.key.toLowerCase() === "s") { e.preventDefault(); skip(); return; }
  if (e.altKey && e.key.toLowerCase() === "u") { e.preventDefault(); undo(); return; }
  const card = document.activeElement && document.activeElement.closest ? document.activeElement.closest(".answer") : null;
  if (!card || !state.item || e.target.tagName === "TEXTAREA") return;
  const position = Number(card.dataset.position);
  const number = Number(e.key);
  if (number >= 1 && number <= state.item.k) { e.preventDefault(); place(position, number - 1); return; }
  const move = { ArrowDown: 1, ArrowUp: -1 }[e.key];
  if (move) {
    e.preventDefault();
    const cards = document.querySelectorAll(".answer");
    cards[(position + move + cards.length) % cards.length].focus();
  }
}

$("annotator").value = params.get("annotator") || localStorage.getItem("annotator") || "";
$("lang").value = state.lang;
$("lang").addEventListener("change", () => { state.lang = $("lang").value; localStorage.setItem("lang", state.lang); translate(); showStats(); });
$("start").addEventListener("click", () => next().catch((err) => say(err.message)));
$("annotator").addEventListener("keydown", (e) => { if (e.key === "Enter") next().catch((err) => say(err.message)); });
$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
document.addEventListener("keydown", onKey);
translate();
if (annotator()) next().catch((err) => say(err.message));
