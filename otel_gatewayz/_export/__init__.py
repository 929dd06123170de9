"""Export: scrubbed, counted span batching, the reasons exports fail for, and the bounded shutdown flush."""
