"""Demo departments and seed data. Speaks only HTTP or the CLI's seeding hooks, never server internals."""
