"""Pure domain: entities, rules and value objects. Imports nothing outside the stdlib."""
