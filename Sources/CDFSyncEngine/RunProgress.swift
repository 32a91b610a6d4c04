/// What a run is doing, for a progress display (the CLI's progress line, a console's run page).
public enum RunPhase: String, Sendable, CaseIterable {
    /// Delivering what an earlier run left, describing the source, planning.
    case preparing
    /// A statement is running or its result is downloading and being decoded.
    case reading
    /// The statement is read; the writer is applying the last batches.
    case applying
    /// Writing the outbox to the output files and webhooks.
    case delivering
    /// Writing records out (`panel export`).
    case exporting
}

/// Receives a run's progress as it happens. Calls come from the reading thread (``phase(_:detail:)``,
/// ``announced(rows:)``, ``read(rows:)``) and from the writer thread (``applied(rows:)``), so an observer must be
/// thread-safe; each call must be cheap (it is made per chunk and per batch, not per row).
public protocol RunProgressObserver: AnyObject, Sendable {
    /// The run entered `phase`; `detail` says what it works on ("v3…v7", "snapshot at v12").
    func phase(_ phase: RunPhase, detail: String?)
    /// A statement's manifest announced its row count (`total_row_count`): added to the rows the run expects.
    func announced(rows: Int64)
    /// `rows` more rows were read (a chunk completed: its rows are decoded and counted).
    func read(rows: Int)
    /// The writer applied a batch of `rows` rows.
    func applied(rows: Int)
}
