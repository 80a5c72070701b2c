"""Link rewriting, signed tokens, and click/open/unsubscribe handling."""
