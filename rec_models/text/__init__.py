"""User profile and item texts, and the sentence encoder that embeds them."""
