"""A read-only web app over the Analyzer's Redis and files: Now, Metric and a JSON API (docs/webapp.md)."""
