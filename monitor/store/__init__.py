"""Storage: typed models, migrations, and the queries the pipeline and the CLI share."""
