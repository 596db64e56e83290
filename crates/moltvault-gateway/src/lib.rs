//! Discovers OpenClaw / Moltbot / Clawdbot gateways and reads their session stores (skeleton).
