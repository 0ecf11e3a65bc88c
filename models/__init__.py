"""Pure ``nn.Module``s and losses of AR-SPM (no file I/O except weight loading)."""
