"""The 18 disposal rule documents, one <rule_id>.json each."""
