import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation
import Logging
/// One sync run (design §3): read the checkpoint, pick the mode, read what changed — `table_changes` ranges
/// pinned to the latest version, a snapshot, or watermark pages — apply it in batches, each batch in one LMDB
/// transaction with its checkpoint, then deliver the outbox and record the run.
public final class CDFSync {
    let client: StatementClient
    let store: PanelStore
    public let options: SyncOptions
    /// Typed events of the run as it goes (statements, applied batches, webhook retries), for metrics.
    public var onEvent: @Sendable (RunEvent) -> Void = { _ in }
    /// Where the run logs: its start and end (info), what it reads and each batch applied (info), warnings
    /// (warning), with the pipeline and run id as metadata. The client logs through its own logger.
    public var logger = Logger(label: "cdfsync.engine")
    /// The run's phases and row counts as they happen (a progress display); nil: none.
    public var progress: (any RunProgressObserver)?
    /// The clock (watermark upper bounds, retention checks).
    public var now: @Sendable () -> Date = { Date() }
    /// Test hook: random delays on the reading and writer threads (``TimingJitter``).
    var jitter: TimingJitter?

    public init(client: StatementClient, store: PanelStore, options: SyncOptions) {
        self.client = client
        self.store = store
        self.options = options
    }

    /// Runs the sync. Always records the run, also when it fails; the error is rethrown after recording.
    public func run() throws -> SyncSummary {
        try recorded(mode: nil) { summary, checkpoint in try execute(.sync, &summary, checkpoint: checkpoint) }
    }

    /// Re-reads `[from, to]` (to: latest) and applies it under per-key monotonicity: nothing newer than what the
    /// panel holds changes. The checkpoint never moves.
    ///
    /// A range with no version to read (`fromVersion` after the latest version) is refused before the run is
    /// recorded: a usage error, which must not stand as the pipeline's last run.
    public func replay(_ replay: ReplayOptions) throws -> SyncSummary {
        guard options.customSQL == nil else {
            throw SyncError("nothing to replay: the source of pipeline \(options.pipeline) is custom SQL, which has no "
                    + "versions to re-read; no run was recorded",
                remedy: "Use `cdfsync refresh` to re-read the whole query.")
        }
        // Asked once, before the record: an error here is recorded by the run below, which does not ask again.
        let asked = Result { try latestVersion() }
        if case .success(let latest) = asked, replay.fromVersion > min(replay.toVersion ?? latest, latest) {
            let range = replay.toVersion.map { "v\(replay.fromVersion)…v\($0)" } ?? "v\(replay.fromVersion) on"
            throw SyncError("nothing to replay: \(range) of \(options.table) holds no version (the latest is "
                    + "v\(latest)); no run was recorded",
                remedy: "Give --from-version \(latest) or lower (and a --to-version at or above it).")
        }
        return try recorded(mode: replay.dryRun ? .replayDryRun : .replay) { summary, checkpoint in
            try execute(.replay(from: replay.fromVersion, to: replay.toVersion, dryRun: replay.dryRun), &summary,
                checkpoint: checkpoint, replay: replay, latest: asked)
        }
    }

    /// Reads the whole source again and applies it under the usual per-key rules — a table at its latest version
    /// (`VERSION AS OF`), the whole view or query, or a watermark source's pages from the beginning — then marks the
    /// source keys of the pipeline that the source no longer has `"in_source": false` (delivered like any change;
    /// nobody is deleted), and lists them. The checkpoint moves to what was read (the snapshot's version: change data
    /// continues after it). A dry run applies, marks, delivers and checkpoints nothing, and reports what would change.
    ///
    /// - Parameters:
    ///   - onAbsent: called for every absent key, in key order, once its mark is committed (in a dry run, as found):
    ///     the caller lists them, the run's record keeps the first ``RefreshOptions/sampleSize``.
    /// - Throws: `SyncError` for an events pipeline (events are never absent: they are immutable facts); the run's
    ///   errors, as ``run()``.
    public func refresh(_ refresh: RefreshOptions, onAbsent: @escaping (PanelStore.AbsentKey) throws -> Void = { _ in })
        throws -> SyncSummary
    {
        if options.spec?.kind == .events {
            throw SyncError("refresh applies to a participants pipeline; \(options.pipeline) imports events, which a "
                    + "source never takes back; no run was recorded",
                remedy: "Refresh the participants pipeline; replay an events pipeline's versions instead.")
        }
        return try recorded(mode: refresh.dryRun ? .refreshDryRun : .refresh) { summary, checkpoint in
            ScratchKeySet.removeStale(in: store.directory)
            let seen = try ScratchKeySet(parent: store.directory)
            refreshing = RefreshRun(options: refresh, seen: seen, onAbsent: onAbsent)
            defer {
                refreshing = nil
                seen.close()
            }
            try execute(.refresh(dryRun: refresh.dryRun), &summary, checkpoint: checkpoint)
        }
    }

    // MARK: - Running the state machine

    /// Performs the actions of a ``SyncRun`` until it finishes: the machine decides, this executes (statements,
    /// applies, deliveries) and reports what happened.
    private func execute(
        _ kind: SyncRun.Kind, _ summary: inout SyncSummary, checkpoint stored: PanelStore.Checkpoint?,
        replay: ReplayOptions? = nil, latest asked: Result<Int64, any Error>? = nil
    ) throws {
        var settings = SyncRun.Settings()
        settings.hasPipeline = options.spec != nil
        settings.start = options.spec?.start ?? .version(options.startVersion)
        settings.startFromFlag = options.spec == nil
        settings.maxVersionsPerStatement = options.maxVersionsPerStatement
        settings.maxRowsPerStatement = options.maxRowsPerStatement
        settings.disposition = options.disposition
        settings.historyLimit = options.historyLimit
        settings.fallBackToSnapshot = options.fallBackToSnapshot
        var machine = SyncRun(
            kind: kind, settings: settings,
            checkpoint: .init(version: stored?.version, sourceCreated: stored?.sourceCreated))
        var history: [HistoryEntry] = []
        var failure: (any Error)?
        var redeliver: ReplayFile?
        var watermark: WatermarkRead?

        var action = machine.start()
        while true {
            switch action {
            case .prepareOutput:
                progress?.phase(.preparing, detail: nil)
                try bindOutputDirectory()
                try prepareActivation(&summary)
                // Deliver (and repair) what an earlier run committed but did not write out.
                try deliver(&summary)
                action = machine.outputPrepared()
            case .decideMode:
                let decision = try decideMode()
                if case .sync = kind {
                    summary.mode = switch decision.mode {
                    case .cdf: .cdf
                    case .snapshot: .snapshot
                    case .watermark: .watermark
                    }
                    // A refresh's record says `refresh`; its parts say how it read.
                    summary.modeReason = decision.reason
                }
                action = machine.modeDecided(decision.mode)
            case .checkColumns:
                if options.customSQL != nil { try checkCustomColumns(options.spec!) } else { try checkColumns(options.spec!) }
                action = machine.columnsChecked()
            case .describeSource where options.customSQL != nil:
                // A query has no type, creation time or versions: a snapshot of it is the whole result now.
                action = machine.sourceDescribed(.init(type: nil, created: nil, latest: nil))
            case .describeSource:
                let info = try tableInfoIfAvailable()
                sourceCreated = info.created
                let isView = info.type.map(Self.isView(type:)) ?? false
                let latest: Int64? = if let asked { try asked.get() } else if isView { nil } else { try latestVersion() }
                summary.latestVersion = latest
                action = machine.sourceDescribed(.init(type: info.type, created: info.created, latest: latest))
            case .findVersion(let timestamp):
                action = machine.versionFound(try firstVersion(atOrAfter: timestamp, latest: machine.source!.latest!))
            case .readHistory(let limit):
                let latest = machine.source!.latest!
                history = try self.history(limit: limit, checkedAgainst: latest)
                action = machine.historyRead(history)
                if let schema = machine.schema, let first = machine.firstVersion {
                    summary.schemaChanges = schema.describe(from: first, to: min(replay?.toVersion ?? latest, latest))
                }
                if let replay, replay.redeliver, !replay.dryRun, let first = machine.firstVersion {
                    try PrivateFiles.makeDirectory(options.outputDirectory,
                        mode: PrivateFiles.directoryMode(forFileMode: options.fileMode))
                    redeliver = try ReplayFile(directory: options.outputDirectory,
                        name: "replay-\(summary.runID)-v\(first)-v\(min(replay.toVersion ?? latest, latest)).ndjson.zst",
                        mode: options.fileMode)
                }
            case .checkRetention(let oldestUnread):
                try warnAboutRetention(history: history, next: oldestUnread, summary: &summary)
                action = machine.retentionChecked()
            case .warn(let warning):
                summary.warnings.append(warning)
                logger.warning("\(warning)")
                action = machine.warned()
            case .read(let part, let note):
                if let note { logger.info("\(note)") }
                progress?.phase(.reading, detail: Self.describe(part))
                if machine.mode == .snapshot, kind == .sync { summary.mode = .snapshot }
                do {
                    // A stop asked for (SIGINT, SIGTERM, a service shutting down) ends the run between parts too:
                    // a statement that completes at once is never polled, so its own check may not come.
                    if client.isCancelled() {
                        throw DatabricksError(.statementCanceled, "the run was stopped on request before its next read",
                            remedy: "Run it again; it resumes from the last checkpoint.")
                    }
                    switch part {
                    case .changes(let range):
                        if case .replay(_, _, let dryRun) = kind {
                            try readReplayRange(range, schema: machine.schema!, dryRun: dryRun, redeliver: redeliver,
                                summary: &summary)
                        } else {
                            try readChanges(range, schema: machine.schema!, summary: &summary)
                        }
                        action = machine.partRead()
                        noteLastCommit(history, &summary)
                    case .snapshot(let version, let reason):
                        let partMode: RunRecord.Part.Mode = if case .changeDataGone = reason { .snapshotFallback } else { .snapshot }
                        try readSnapshot(at: version, summary: &summary, part: partMode)
                        action = machine.partRead()
                        noteLastCommit(history, &summary)
                    case .watermarkPage(let from):
                        if watermark == nil {
                            // A refresh reads the whole source: from the beginning, not the checkpoint.
                            let from = refreshing == nil ? stored : nil
                            watermark = try WatermarkRead(options: options, checkpoint: from, now: now())
                        }
                        let page = try readWatermarkPage(watermark!, after: from, summary: &summary)
                        action = machine.partRead(
                            watermarkRows: page.rows, lastPosition: page.last, pageSize: watermark!.pageSize)
                    case .nullCursors:
                        try countNullCursors(watermark!, summary: &summary)
                        action = machine.partRead()
                    }
                } catch {
                    failure = error
                    action = machine.partFailed(Self.readFailure(error))
                }
            case .markAbsent:
                try markAbsent(&summary)
                action = machine.absentMarked()
            case .deliver:
                progress?.phase(.delivering, detail: nil)
                if let f = redeliver {
                    try f.finish()
                    summary.outputFiles.append(f.name)
                    summary.delivered += f.lines
                }
                try deliver(&summary)
                try deliverInvitations(&summary)
                if kind == .sync || kind == .refresh(dryRun: false) {
                    try deliverWebhooks(&summary)
                    try deliverInvitationWebhook(&summary)
                }
                action = machine.delivered()
            case .finish:
                return
            case .refuse(let refusal):
                throw refusalError(refusal, failure: failure)
            }
        }
    }

    /// The commit time of the version the run has brought the panel to, when the history read says it.
    private func noteLastCommit(_ history: [HistoryEntry], _ summary: inout SyncSummary) {
        guard let v = summary.toVersion,
            let t = (history + [latestEntry].compactMap { $0 }).first(where: { $0.version == v })?.timestamp
        else { return }
        summary.lastCommitAt = t
    }

    /// A part, in a few words for a progress display.
    static func describe(_ part: SyncRun.Part) -> String {
        switch part {
        case .changes(let range): "v\(range.start)…v\(range.end)"
        case .snapshot(let version, _): version.map { "snapshot at v\($0)" } ?? "snapshot"
        case .watermarkPage: "watermark page"
        case .nullCursors: "NULL cursors"
        }
    }

    /// What a part's error means to the run.
    static func readFailure(_ error: any Error) -> SyncRun.ReadFailure {
        guard let e = error as? DatabricksError else { return .other }
        let errorClass = e.errorClass ?? e.category.name
        if e.isHistoryLost { return .changeDataGone(errorClass: errorClass) }
        if e.isStartingCommitSchemaBreak { return .startingCommitSchema(errorClass: errorClass) }
        if e.isSchemaBreak { return .schemaChange(at: e.schemaBreakVersion, errorClass: errorClass) }
        return .other
    }

    /// The error a refusal stops the run with.
    private func refusalError(_ refusal: SyncRun.Refusal, failure: (any Error)?) -> any Error {
        switch refusal {
        case .viewHasNoChangeData(let type):
            // A view has no history to ask for the latest version of; say what to do instead of relaying the
            // warehouse's DELTA_CANNOT_DESCRIBE_VIEW_HISTORY.
            return SyncError("\(options.table) is a \(Self.describe(type: type)): views have no change data feed to read",
                remedy: options.spec == nil
                    ? "Sync it with a pipeline file in watermark mode (a cursor column such as last_updated_at) or "
                        + "snapshot mode; see docs/pipelines.md."
                    : "Use mode: watermark (with a cursor column) or mode: snapshot, or mode: auto, which picks one.")
        case .checkpointAfterLatest(let checkpoint, let latest):
            // Waiting for the new history to pass the checkpoint would skip its first versions, and every row of it
            // would look older than what the panel holds: refuse, and move nothing.
            return SyncError(
                "pipeline \(options.pipeline) is checkpointed at v\(checkpoint), but the latest version of \(options.table) "
                    + "is v\(latest): the table's history restarted (it was dropped and created again, or another table "
                    + "now has this name), so its versions do not continue the checkpoint",
                remedy: Self.restartedHistoryRemedy)
        case .sourceRecreated(let created, let before, let checkpoint, let latest):
            return SyncError(
                "\(options.table) was created at \(created), but pipeline \(options.pipeline)'s checkpoint (v\(checkpoint)) "
                    + "was taken from a table of that name created at \(before): it was dropped and created again, so its "
                    + "versions restarted and do not continue the checkpoint (latest is now v\(latest))",
                remedy: Self.restartedHistoryRemedy)
        case .startAfterLatest(let start, let latest, let fromFlag):
            return SyncError("start version v\(start) is after the latest version of \(options.table), v\(latest)",
                remedy: "Give \(fromFlag ? "--start-version" : "start:") \(latest) or lower "
                    + "(\(latest.saturatingAdd(1)) starts with the next commit), or check the table name.")
        case .noVersionAtOrAfter(let timestamp, let latest):
            return SyncError(
                "start: no version of \(options.table) was committed at or after \(timestamp) (latest is v\(latest))",
                remedy: "Use an earlier timestamp, or start: latest.")
        case .partFailed:
            return failure ?? SyncError("the run stopped", remedy: "Run it again.")
        }
    }

    private func recorded(mode: RunRecord.Mode?, _ body: (inout SyncSummary, PanelStore.Checkpoint?) throws -> Void)
        throws -> SyncSummary
    {
        let started = Date()
        var summary = SyncSummary(pipeline: options.pipeline, table: options.sourceLabel)
        if let mode { summary.mode = mode }
        summary.durability = store.environment.durable ? "commit" : "run"
        let checkpoint = try store.checkpoint(pipeline: options.pipeline)
        summary.checkpointBefore = checkpoint?.version
        summary.watermark = checkpoint?.watermark
        summary.watermarkBefore = checkpoint?.watermark
        try markInterruptedRuns()
        summary.runID = try store.appendRun(summary.json())
        // The run's lines, and its client's, say which pipeline and run they belong to.
        for key in ["pipeline", "run_id"] {
            let value: Logger.MetadataValue = key == "pipeline" ? "\(options.pipeline)" : "\(summary.runID)"
            logger[metadataKey: key] = value
            client.logger[metadataKey: key] = value
        }
        defer {
            logger[metadataKey: "run_id"] = nil
            client.logger[metadataKey: "run_id"] = nil
        }
        logger.info("run \(summary.runID) started: \(mode?.rawValue ?? "sync") of \(options.table)", metadata: [
            "checkpoint": "\(checkpoint?.version.map { "v\($0)" } ?? checkpoint?.watermark ?? "none")",
        ])
        do {
            try body(&summary, checkpoint)
            summary.status = .succeeded
            summary.checkpointVersion = try store.checkpoint(pipeline: options.pipeline)?.version
            summary.seconds = Date().timeIntervalSince(started)
            summary.peakResidentBytes = ProcessMemory.peakResidentBytes()
            try store.updateRun(id: summary.runID, json: summary.json())
            if !store.environment.durable { try store.environment.sync() }
            // The next run (or process) opens the store without scanning every identity key.
            store.saveFilter()
            logger.info("run \(summary.runID) succeeded", metadata: [
                "rows_read": "\(summary.rowsRead)", "inserted": "\(summary.inserted)", "updated": "\(summary.updated)",
                "checkpoint": "\(summary.checkpointVersion.map { "v\($0)" } ?? summary.watermark ?? "none")",
                "seconds": "\(String(format: "%.3f", summary.seconds))",
            ])
            return summary
        } catch {
            summary.status = .failed
            summary.error = "\(error)"
            // Rows read that no count places: in batches the writer had not committed when the run stopped, or the
            // row it stopped at.
            summary.counts.notApplied = max(0, summary.counts.read - summary.counts.accounted)
            let stored = (try? store.checkpoint(pipeline: options.pipeline)) ?? nil
            summary.checkpointVersion = stored?.version
            // In watermark mode, the watermark reached is the one the last applied page checkpointed.
            if summary.mode == .watermark { summary.watermark = stored?.watermark }
            summary.seconds = Date().timeIntervalSince(started)
            summary.peakResidentBytes = ProcessMemory.peakResidentBytes()
            try? store.updateRun(id: summary.runID, json: summary.json())
            if !store.environment.durable { try? store.environment.sync() }
            logger.error("run \(summary.runID) failed: \(error)", metadata: [
                "rows_read": "\(summary.rowsRead)",
                "checkpoint": "\(summary.checkpointVersion.map { "v\($0)" } ?? summary.watermark ?? "none")",
            ])
            throw SyncFailure(summary: summary, underlying: error)
        }
    }

    /// Rewrites the records of runs left `running` by a process that is gone as `interrupted`: this process holds
    /// the state directory's writer lock, so no other process is running one. (Runs of this process are left
    /// alone; a store opened as a reader cannot tell and changes nothing.)
    private func markInterruptedRuns() throws {
        guard store.isWriter else { return }
        // Read as this process, the holder, would see them: its own runs stay `running`.
        let holder = WriterLock.Holder(pid: getpid(), process: WriterLock.processToken)
        for (id, json) in try store.runs(limit: 20) {
            // A record this build cannot read is left as it is.
            guard var record = try? RunRecord(json: json), record.effectiveStatus(holder: holder) == .interrupted,
                record.status == .running
            else { continue }
            record.runID = id
            record.markInterrupted()
            try store.updateRun(id: id, json: record.json())
        }
    }

    /// Before reading anything: the output directory must be this store's (or free), or delivery would fail only
    /// after the whole read; and changes this pipeline applies go there, whichever pipeline of the store delivers.
    func bindOutputDirectory() throws {
        try store.checkDeliveryDirectory(options.outputDirectory, fileMode: options.fileMode)
        try store.setDeliveryDirectory(options.outputDirectory, pipeline: options.pipeline, fileMode: options.fileMode)
    }

    var filterSQL: (sql: [String], parameters: [StatementParameter]) { Self.filterSQL(options.spec?.filters ?? []) }

    /// A pipeline's filters as WHERE conditions and the statement parameters that bind their values.
    static func filterSQL(_ filters: [Pipeline.Filter], reading: [String: ColumnRead] = [:])
        -> (sql: [String], parameters: [StatementParameter])
    {
        let f = SQL.filterConditions(filters, reading: reading)
        return (f.sql, f.parameters.map { StatementParameter(name: $0.name, value: $0.value, type: $0.type) })
    }

    var tableInfoCache: (type: String?, created: String?)?
    /// When the source was created, recorded in this run's change-feed checkpoints (set when the run reads
    /// versions of a table).
    var sourceCreated: String?
    /// The source's columns now, when a sync of every column reads them by name (``readColumns(_:)``).
    var resolvedColumns: [String]?
    /// The refresh being run (``refresh(_:onAbsent:)``), nil for other runs.
    var refreshing: RefreshRun?
    /// The newest commit of the source when the run asked for its latest version (its time, for the record's
    /// `last_commit_at` when the run reads that version as a snapshot).
    var latestEntry: HistoryEntry?
}

/// A failed run: the summary as recorded, and the cause.
public struct SyncFailure: Error, CustomStringConvertible {
    public var summary: SyncSummary
    public var underlying: any Error
    public var description: String { "\(underlying)" }
}
