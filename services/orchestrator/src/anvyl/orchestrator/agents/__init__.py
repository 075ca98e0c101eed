"""Named agents: profiles (provider, model, key, backups, prompt, policy) bound to their own workspace."""
