-- Cached intel is pruned by age and count (oldest first).
CREATE INDEX intel_gathered_at ON intel (gathered_at);
