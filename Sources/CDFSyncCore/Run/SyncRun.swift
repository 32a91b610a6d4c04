/// How a run reads its source.
public enum ReadMode: String, Sendable, Equatable { case cdf, watermark, snapshot }

/// One run of a sync or a replay as a state machine, in the manner of postgres-nio's protocol state machines: a
/// value with no I/O, which says what to do next (``Action``) and learns what happened (its event methods each return
/// the next action). The engine (`CDFSync`) performs the actions — statements, applies, deliveries — and reports back;
/// every decision between them (where to start, how to cut the versions into statements, what a refused range means,
/// when to fall back to a snapshot, when to stop) is made here and tested as a table of transitions.
public struct SyncRun: Sendable {
    /// What kind of run.
    public enum Kind: Sendable, Equatable {
        /// A sync from the checkpoint.
        case sync
        /// A replay of `[from, to]` (`to`: the latest version); the checkpoint never moves. A dry run applies nothing
        /// and delivers nothing.
        case replay(from: Int64, to: Int64?, dryRun: Bool)
        /// A manual full refresh: the whole source again — a snapshot at the latest version of a table, the whole view
        /// or query, or a watermark source's pages from the beginning — applied under the usual per-key rules, then
        /// the keys the source no longer has are marked (``Action/markAbsent``). A dry run applies, marks and
        /// delivers nothing.
        case refresh(dryRun: Bool)

        var isDryRun: Bool {
            switch self {
            case .sync: false
            case .replay(_, _, let dryRun), .refresh(let dryRun): dryRun
            }
        }
    }

    /// What the run is configured with (from the pipeline and the command line).
    public struct Settings: Sendable, Equatable {
        /// Whether a pipeline file drives the run (its mapped columns are checked before reading).
        public var hasPipeline = false
        /// Where a first sync starts (a checkpoint takes precedence).
        public var start: Pipeline.Start = .first
        /// Whether `--start-version` (true) or the pipeline's `start:` (false) set `start`, for messages.
        public var startFromFlag = true
        public var maxVersionsPerStatement: Int64 = 500
        public var maxRowsPerStatement: Int64 = 5_000_000
        /// Forced disposition (nil: by expected size).
        public var disposition: ResultDisposition?
        /// At most this many history entries are read to plan.
        public var historyLimit: Int64 = 10_000
        /// Whether change data that is gone is resynced from a snapshot (sync only; a replay fails).
        public var fallBackToSnapshot = true
        public init() {}
    }

    /// The checkpoint the run starts from.
    public struct Checkpoint: Sendable, Equatable {
        public var version: Int64?
        /// When the source the versions belong to was created (nil: not recorded).
        public var sourceCreated: String?
        public init(version: Int64?, sourceCreated: String? = nil) {
            self.version = version
            self.sourceCreated = sourceCreated
        }
    }

    /// What the engine found out about the source.
    public struct Source: Sendable, Equatable {
        /// `information_schema.tables.table_type` (nil: not visible there).
        public var type: String?
        /// `information_schema.tables.created` (nil: not visible there).
        public var created: String?
        /// The latest version (`DESCRIBE HISTORY … LIMIT 1`); nil for a view, which has none.
        public var latest: Int64?
        public init(type: String?, created: String?, latest: Int64?) {
            self.type = type
            self.created = created
            self.latest = latest
        }

        public var isView: Bool { type.map { ["VIEW", "MATERIALIZED_VIEW"].contains($0.uppercased()) } ?? false }
    }

    /// Why a snapshot is read.
    public enum SnapshotReason: Sendable, Equatable {
        /// The pipeline's mode is `snapshot`.
        case mode
        /// A first sync with `start: latest`.
        case startLatest
        /// A refresh (``Kind/refresh(dryRun:)``).
        case refresh
        /// The change data of `range` is gone (`errorClass`).
        case changeDataGone(range: ClosedRange<Int64>, errorClass: String)
    }

    /// What to read.
    public enum Part: Sendable, Equatable {
        /// `table_changes` of a planned range (checkpointed at its end in a sync).
        case changes(PlannedRange)
        /// A snapshot `VERSION AS OF version` (a view: a plain SELECT, `version` nil).
        case snapshot(version: Int64?, reason: SnapshotReason)
        /// A watermark page after `from` (nil: from the beginning), up to the run's upper bound.
        case watermarkPage(from: WatermarkPosition?)
        /// The rows whose watermark cursor is NULL (counted and reported; the pages never read them).
        case nullCursors
    }

    /// A watermark position: the cursor value and the key of the last row at it.
    public struct WatermarkPosition: Sendable, Equatable {
        public var cursor: String
        public var key: String
        public init(cursor: String, key: String) {
            self.cursor = cursor
            self.key = key
        }
    }

    /// Why a part could not be read.
    public enum ReadFailure: Sendable, Equatable {
        /// The change data is gone (vacuum, retention, CDF off): `errorClass` names it.
        case changeDataGone(errorClass: String)
        /// The range spans a schema change change data cannot be read across, at `version` when the warehouse says.
        case schemaChange(at: Int64?, errorClass: String)
        /// The start commit cannot be read in the read schema (no range starting there can be read).
        case startingCommitSchema(errorClass: String)
        /// Anything else: the run fails with it.
        case other
    }

    /// Why the run stops without reading (the engine turns it into its error, with the remedy).
    public enum Refusal: Sendable, Equatable {
        /// Views have no change data to read.
        case viewHasNoChangeData(type: String)
        /// The checkpoint is past the latest version: the table's history restarted.
        case checkpointAfterLatest(checkpoint: Int64, latest: Int64)
        /// The source was created at another time than the one the checkpoint was taken from.
        case sourceRecreated(created: String, checkpointCreated: String, checkpoint: Int64, latest: Int64)
        /// A first sync's start version is after the latest version + 1.
        case startAfterLatest(start: Int64, latest: Int64, fromFlag: Bool)
        /// No version was committed at or after the start timestamp.
        case noVersionAtOrAfter(timestamp: String, latest: Int64)
        /// A part failed and nothing takes over: the engine rethrows the part's error.
        case partFailed
    }

    /// What the engine does next.
    public enum Action: Sendable, Equatable {
        /// Bind the output directory and deliver (repair) what an earlier run left → ``outputPrepared()``.
        case prepareOutput
        /// Decide the read mode (a pipeline's `mode`, or what `auto` sees) → ``modeDecided(_:)``.
        case decideMode
        /// Check that every mapped column exists now (naming renames and drops) → ``columnsChecked()``.
        case checkColumns
        /// Find the source's type, creation time and latest version → ``sourceDescribed(_:)``.
        case describeSource
        /// Find the first version committed at or after `timestamp` → ``versionFound(_:)``.
        case findVersion(atOrAfter: String)
        /// Read `DESCRIBE HISTORY` (at most `limit` entries), checked against the latest version →
        /// ``historyRead(_:)``.
        case readHistory(limit: Int64)
        /// Warn when the oldest version still to read may have been vacuumed already (sync only) →
        /// ``retentionChecked()``.
        case checkRetention(oldestUnread: Int64)
        /// Read a part → ``partRead(_:)`` or ``partFailed(_:)``. `note`: a line for the progress output.
        case read(Part, note: String?)
        /// Add a warning to the run's record → ``warned()``.
        case warn(String)
        /// A refresh read its whole source: find the panel's keys it no longer has and mark them (count them, in a dry
        /// run) → ``absentMarked()``.
        case markAbsent
        /// Deliver the outbox and feed the webhooks → ``delivered()``.
        case deliver
        /// The run is done.
        case finish
        /// The run stops (see ``Refusal``).
        case refuse(Refusal)
    }

    public let kind: Kind
    public let settings: Settings
    private let checkpoint: Checkpoint

    /// How the run reads; `snapshot` once a change-data run took a snapshot instead (`start: latest`, fallback).
    public private(set) var mode: ReadMode?
    /// The source as described.
    public private(set) var source: Source?
    /// The first version the run reads (change data), once known.
    public private(set) var firstVersion: Int64?
    /// The source's schema history over the versions read (change data), once read.
    public private(set) var schema: SchemaHistory?

    private var state: State = .initial
    private var ranges: UnfoldSequence<PlannedRange, Int64?>?
    /// Parts of split ranges, read before the next planned range (a stack: the last is next).
    private var splitParts: [PlannedRange] = []
    /// The part being read.
    private var reading: Part?
    /// The action (and its state) a warning was given before.
    private var pending: [(state: State, action: Action)] = []

    private enum State: Sendable, Equatable {
        case initial, preparingOutput, decidingMode, checkingColumns, describingSource, findingVersion
        case readingHistory, checkingRetention, reading, markingAbsent, delivering, warning, finished, refused
    }

    public init(kind: Kind, settings: Settings, checkpoint: Checkpoint) {
        self.kind = kind
        self.settings = settings
        self.checkpoint = checkpoint
    }

    // MARK: Events

    /// The first action.
    public mutating func start() -> Action {
        switch kind {
        case .sync:
            return go(.preparingOutput, .prepareOutput)
        case .replay(_, _, let dryRun):
            mode = .cdf
            return dryRun ? go(.describingSource, .describeSource) : go(.preparingOutput, .prepareOutput)
        case .refresh(let dryRun):
            return dryRun ? go(.decidingMode, .decideMode) : go(.preparingOutput, .prepareOutput)
        }
    }

    public mutating func outputPrepared() -> Action {
        precondition(state == .preparingOutput, "outputPrepared in \(state)")
        if case .replay = kind { return go(.describingSource, .describeSource) }
        return go(.decidingMode, .decideMode)
    }

    public mutating func modeDecided(_ mode: ReadMode) -> Action {
        precondition(state == .decidingMode, "modeDecided in \(state)")
        self.mode = mode
        if settings.hasPipeline { return go(.checkingColumns, .checkColumns) }
        return afterColumns()
    }

    public mutating func columnsChecked() -> Action {
        precondition(state == .checkingColumns, "columnsChecked in \(state)")
        return afterColumns()
    }

    private mutating func afterColumns() -> Action {
        switch mode! {
        case .watermark: return readPart(.watermarkPage(from: nil))
        case .snapshot, .cdf: return go(.describingSource, .describeSource)
        }
    }

    public mutating func sourceDescribed(_ source: Source) -> Action {
        precondition(state == .describingSource, "sourceDescribed in \(state)")
        self.source = source
        if mode == .snapshot, case .refresh = kind {
            return readPart(.snapshot(version: source.isView ? nil : source.latest, reason: .refresh))
        }
        if mode == .snapshot { return readPart(.snapshot(version: source.isView ? nil : source.latest, reason: .mode)) }
        if source.isView, let type = source.type { return refuse(.viewHasNoChangeData(type: type)) }
        guard let latest = source.latest else { return refuse(.partFailed) }
        // A table dropped and created again has a new creation time and versions from 0 again.
        if let before = checkpoint.sourceCreated, let created = source.created, let at = checkpoint.version,
            !Timestamps.sameInstant(before, created)
        {
            return refuse(.sourceRecreated(created: created, checkpointCreated: before, checkpoint: at, latest: latest))
        }
        if case .replay(let from, _, _) = kind { return startReading(at: from, latest: latest) }
        if case .refresh = kind {
            // The history must still continue the checkpoint (the checks above and below); then the whole table at
            // its latest version, and change data continues after it.
            if let at = checkpoint.version, at > latest {
                return refuse(.checkpointAfterLatest(checkpoint: at, latest: latest))
            }
            mode = .snapshot
            return readPart(.snapshot(version: latest, reason: .refresh))
        }
        if let at = checkpoint.version {
            // Versions only grow: a checkpoint past the latest belongs to a history that is gone.
            guard at <= latest else { return refuse(.checkpointAfterLatest(checkpoint: at, latest: latest)) }
            return startReading(at: at.saturatingAdd(1), latest: latest)
        }
        switch settings.start {
        case .first:
            return startReading(at: 0, latest: latest)
        case .version(let v):
            // As Databricks refuses table_changes from a version after the latest; latest + 1 is "from the next
            // commit on".
            guard v <= latest.saturatingAdd(1) else {
                return refuse(.startAfterLatest(start: v, latest: latest, fromFlag: settings.startFromFlag))
            }
            return startReading(at: v, latest: latest)
        case .latest:
            mode = .snapshot
            return warnThen("start: latest — took a snapshot at v\(latest); change data continues from there",
                readPart(.snapshot(version: latest, reason: .startLatest)))
        case .timestamp(let t):
            return go(.findingVersion, .findVersion(atOrAfter: t))
        }
    }

    /// The first version committed at or after the start timestamp (nil: none).
    public mutating func versionFound(_ version: Int64?) -> Action {
        precondition(state == .findingVersion, "versionFound in \(state)")
        let latest = source!.latest!
        guard let version else {
            if case .timestamp(let t) = settings.start { return refuse(.noVersionAtOrAfter(timestamp: t, latest: latest)) }
            return refuse(.partFailed)
        }
        return startReading(at: version, latest: latest)
    }

    private mutating func startReading(at next: Int64, latest: Int64) -> Action {
        firstVersion = next
        let end = readEnd(latest: latest)
        guard next <= end else { return finishReading() }
        return go(.readingHistory, .readHistory(limit: min(latest.saturatingSubtract(next).saturatingAdd(2),
            settings.historyLimit)))
    }

    /// The last version the run reads.
    private func readEnd(latest: Int64) -> Int64 {
        if case .replay(_, let to?, _) = kind { return min(to, latest) }
        return latest
    }

    public mutating func historyRead(_ history: [HistoryEntry]) -> Action {
        precondition(state == .readingHistory, "historyRead in \(state)")
        let schema = SchemaHistory(history: history)
        self.schema = schema
        let (next, latest) = (firstVersion!, source!.latest!)
        var planner = RangePlanner()
        if case .replay = kind {
            // A replay re-reads applied versions: one statement per stretch without a schema break.
            planner.maxVersionsPerStatement = .max
            planner.maxRowsPerStatement = .max
            ranges = planner.ranges(start: next, end: readEnd(latest: latest), history: [], breaks: schema.breaks)
            return nextRange()
        }
        planner.maxVersionsPerStatement = settings.maxVersionsPerStatement
        planner.maxRowsPerStatement = settings.maxRowsPerStatement
        if let forced = settings.disposition { planner.externalLinksThreshold = forced == .inline ? .max : -1 }
        ranges = planner.ranges(start: next, end: latest, history: history, breaks: schema.breaks)
        if checkpoint.version != nil { return go(.checkingRetention, .checkRetention(oldestUnread: next)) }
        return nextRange()
    }

    public mutating func retentionChecked() -> Action {
        precondition(state == .checkingRetention, "retentionChecked in \(state)")
        return nextRange()
    }

    /// The part asked for was read (and, in a sync, applied and checkpointed). `watermarkRows` and `lastPosition`:
    /// for a watermark page, the rows it read and the position of its last row.
    public mutating func partRead(watermarkRows: Int = 0, lastPosition: WatermarkPosition? = nil, pageSize: Int = 0)
        -> Action
    {
        precondition(state == .reading, "partRead in \(state)")
        switch reading! {
        case .changes: return nextRange()
        case .snapshot: return finishReading()
        case .watermarkPage:
            // A full page may have more after it; a short (or empty) page was the last.
            if let last = lastPosition, watermarkRows >= pageSize, pageSize > 0 {
                return readPart(.watermarkPage(from: last))
            }
            return readPart(.nullCursors)
        case .nullCursors: return finishReading()
        }
    }

    /// The part asked for failed.
    public mutating func partFailed(_ failure: ReadFailure) -> Action {
        precondition(state == .reading, "partFailed in \(state)")
        guard case .changes(let range) = reading else { return refuse(.partFailed) }
        switch failure {
        case .schemaChange(let at, _) where range.start < range.end:
            // Read the two sides of the change separately, each checkpointed at its own end: nothing is skipped.
            let split = at.flatMap { $0 > range.start && $0 <= range.end ? $0 : nil }
                ?? range.start + (range.end - range.start) / 2 + (range.end - range.start) % 2
            let d = range.disposition
            splitParts.append(PlannedRange(start: split, end: range.end, estimatedRows: nil, disposition: d))
            let first = PlannedRange(start: range.start, end: split - 1, estimatedRows: nil, disposition: d)
            let errorClass = if case .schemaChange(_, let c) = failure { c } else { "" }
            return readPart(.changes(first),
                note: "v\(range.start)…v\(range.end) spans a schema change (\(errorClass)); reading "
                    + "v\(range.start)…v\(split - 1) and v\(split)…v\(range.end) separately")
        case .changeDataGone(let c), .schemaChange(_, let c), .startingCommitSchema(let c):
            // Gone, or a single version (or every range's first commit) that no statement can read in the table's
            // schema: as good as gone. A sync resyncs from a snapshot at the latest version; a replay fails.
            guard case .sync = kind, settings.fallBackToSnapshot, let latest = source?.latest else {
                return refuse(.partFailed)
            }
            mode = .snapshot
            ranges = nil
            splitParts = []
            return warnThen(
                "change data for v\(range.start)…v\(range.end) is unavailable (\(c)); resynced from a snapshot at v\(latest)",
                readPart(.snapshot(version: latest, reason: .changeDataGone(range: range.start...range.end, errorClass: c))))
        case .other:
            return refuse(.partFailed)
        }
    }

    public mutating func warned() -> Action {
        precondition(state == .warning, "warned in \(state)")
        let (next, action) = pending.removeFirst()
        state = next
        return action
    }

    public mutating func delivered() -> Action {
        precondition(state == .delivering, "delivered in \(state)")
        return go(.finished, .finish)
    }

    // MARK: Transitions

    private mutating func nextRange() -> Action {
        if let part = splitParts.popLast() ?? ranges?.next() { return readPart(.changes(part)) }
        return finishReading()
    }

    private mutating func readPart(_ part: Part, note: String? = nil) -> Action {
        reading = part
        return go(.reading, .read(part, note: note))
    }

    private mutating func finishReading() -> Action {
        reading = nil
        if case .refresh = kind { return go(.markingAbsent, .markAbsent) }
        if case .replay(_, _, true) = kind { return go(.finished, .finish) }
        return go(.delivering, .deliver)
    }

    /// The keys the source no longer has were marked (counted, in a dry run).
    public mutating func absentMarked() -> Action {
        precondition(state == .markingAbsent, "absentMarked in \(state)")
        return kind.isDryRun ? go(.finished, .finish) : go(.delivering, .deliver)
    }

    private mutating func refuse(_ refusal: Refusal) -> Action { go(.refused, .refuse(refusal)) }

    /// Warns first, then goes on with `next` (already computed, with its state).
    private mutating func warnThen(_ warning: String, _ next: Action) -> Action {
        pending.append((state, next))
        state = .warning
        return .warn(warning)
    }

    private mutating func go(_ state: State, _ action: Action) -> Action {
        self.state = state
        return action
    }
}
