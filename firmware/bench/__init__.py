"""``pafw bench``: one module per benchmark (graph, actions, Python actions, web)."""
