//! Finds and redacts secrets in gateway transcripts (skeleton; filled in by the redaction issue).
