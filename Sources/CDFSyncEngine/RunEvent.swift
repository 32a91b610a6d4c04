import CDFSyncStorage

/// What a run reports while it goes, typed (``CDFSync/onEvent``): what `cdfsync serve` counts for its metrics
/// before the run's record is final. People read the run's log lines (``CDFSync/logger``) and its progress display; programs read these.
///
/// Events come from the run's threads (the reading thread, the writer): a handler must be quick and thread-safe.
/// They never change what the run does.
public enum RunEvent: Sendable {
    /// A statement that read rows of the source finished (one of the record's `statement_ids`): the rows it read,
    /// the bytes of JSON it received, and its wall-clock seconds from submission to its last chunk.
    case statementFinished(statementID: String, rows: Int, bytes: Int, seconds: Double)
    /// The writer committed a batch of `rows` rows, with what it did with them and the checkpoint version it moved
    /// to (nil: a batch without a version checkpoint — watermark pages, a replay).
    case batchApplied(rows: Int, outcome: PanelStore.ApplyOutcome, checkpointVersion: Int64?)
    /// A webhook sink sent a batch again after a failed attempt (`attempt` is the one that failed, from 1).
    case webhookRetry(host: String, attempt: Int)
}
