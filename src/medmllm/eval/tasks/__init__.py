"""Built-in evaluation tasks, one folder each (task.yaml + optional process.py)."""
