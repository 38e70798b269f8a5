"""The browser UI: one module per tab; no training code lives here."""
