"""Reports: result.json, history.jsonl, junit.xml, summary.md and the console tables."""
