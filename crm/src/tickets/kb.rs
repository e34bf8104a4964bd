//! The knowledge base: articles from tickets or by hand, full-text search.
