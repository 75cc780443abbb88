//! Counting k-mers of DNA sequences into a counter maplet.
