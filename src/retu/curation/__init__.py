"""Curation of problem sets (`retu data dedup | decontaminate | difficulty | stats`): above `data`,
`eval` and `engine`, whose models, generation and tokenizers the checks use."""
