"""Paper numbers, tables, figures, representation analyses and DVC metrics."""
