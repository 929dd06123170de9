"""Spend: every provider answer's tokens and dollar cost, read as it passes and priced with genai-prices."""
