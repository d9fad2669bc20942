"""Instruction data: task schemas, template packs, loaders, the instruct and corpus stages."""
