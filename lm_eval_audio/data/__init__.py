"""Dataset loaders: one module per source, each with a hub route and a local-folder route."""
