import CDFSyncCore
import CDFSyncStorage
import Foundation

/// What one run did: the numbers `sync` and `replay` print at their end, and the run's audit record (design §2.6),
/// stored in the state directory as JSON and read back by `cdfsync runs` and `cdfsync status` — one type, written
/// and read through `Codable` (docs/pipelines.md, Audit, lists every key).
///
/// Layouts (`record_version`): 2 is this one. Records written by earlier builds have no `record_version` (1); they
/// read as version 2 does (``init(from:)``): their `from_version` was the checkpoint before the run (a replay's: the
/// version before its range), and the parts read are derived from their mode and versions.
public struct RunRecord: Sendable, Equatable {
    /// The layout this build writes.
    public static let currentVersion = 2

    /// How a run read its source.
    public enum Mode: String, Sendable, Codable {
        case cdf, snapshot, watermark, replay
        case replayDryRun = "replay (dry run)"
        /// `cdfsync refresh`: the whole source read again, absent keys marked (see ``RunRecord/refresh``).
        case refresh
        case refreshDryRun = "refresh (dry run)"

        public var isReplay: Bool { self == .replay || self == .replayDryRun }
        public var isRefresh: Bool { self == .refresh || self == .refreshDryRun }
    }

    /// What a refresh found about the source keys the panel holds (``Mode/refresh``).
    public struct Refresh: Sendable, Equatable, Codable {
        /// Source keys of the pipeline in the panel when the refresh had read its source.
        public var keys = 0
        /// Of them, the source no longer has (marked `"in_source": false`, now or by an earlier refresh).
        public var absent = 0
        /// Of them, marked by this refresh (each one change delivered); in a dry run, those it would mark.
        public var newlyAbsent = 0
        /// The first absent keys (external ids), in key order.
        public var absentSample: [String] = []
        /// A file listing every absent key, when the refresh was asked to write one.
        public var absentList: String?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case keys, absent, newlyAbsent = "newly_absent", absentSample = "absent_sample", absentList = "absent_list"
        }
    }

    /// Where a run stands: `running` from the moment it starts until it ends `succeeded` or `failed`. A run whose
    /// process ended without finishing it (SIGKILL, a crash, a host that stopped) stays `running` in the store; it is
    /// `interrupted` once no process holds the state directory (readers show it so, ``current(holder:)``), and the
    /// next run rewrites it so (``CDFSync``).
    public enum Status: String, Sendable, Codable {
        case running, succeeded, failed, interrupted
    }

    /// One stretch of the source a run read the same way: change data over consecutive versions, a snapshot at one
    /// version, or watermark pages.
    public struct Part: Sendable, Equatable, Codable {
        public enum Mode: String, Sendable, Codable {
            /// `table_changes` over `fromVersion…toVersion` (a sync's or a replay's).
            case cdf
            /// A snapshot at `fromVersion` (= `toVersion`; nil for a view): snapshot mode, or a first run with
            /// `start: latest`.
            case snapshot
            /// A snapshot at the latest version taken because the change data of the range was gone.
            case snapshotFallback = "snapshot_fallback"
            /// Keyset pages by the cursor column, from the record's `watermarkBefore` to its `watermark` (no versions).
            case watermark
        }

        public var mode: Mode
        /// The first version read (inclusive); a snapshot's version; nil for watermark pages and a view's snapshot.
        public var fromVersion: Int64?
        /// The last version read (inclusive); a snapshot's version; nil as `fromVersion`.
        public var toVersion: Int64?
        /// Statements that read it.
        public var statements = 0
        /// Rows read in it.
        public var rowsRead = 0
        /// False when the run failed while reading it: it read only some of `fromVersion…toVersion`.
        public var complete = true

        public init(mode: Mode, fromVersion: Int64? = nil, toVersion: Int64? = nil, statements: Int = 0,
                    rowsRead: Int = 0, complete: Bool = true) {
            self.mode = mode
            self.fromVersion = fromVersion
            self.toVersion = toVersion
            self.statements = statements
            self.rowsRead = rowsRead
            self.complete = complete
        }

        enum CodingKeys: String, CodingKey {
            case mode, fromVersion = "from_version", toVersion = "to_version", statements, rowsRead = "rows_read"
            case complete
        }

        /// What it read, e.g. `v5…v8`, `snapshot at v9`.
        public var description: String {
            let what: String
            switch mode {
            case .cdf: what = Self.versions(fromVersion, toVersion)
            case .snapshot: what = toVersion.map { "snapshot at v\($0)" } ?? "snapshot"
            case .snapshotFallback:
                what = (toVersion.map { "snapshot at v\($0)" } ?? "snapshot") + " (change data gone)"
            case .watermark: what = "watermark pages"
            }
            return what + (complete ? "" : " (incomplete: the run stopped in it)")
        }

        static func versions(_ from: Int64?, _ to: Int64?) -> String {
            guard let from, let to else { return "versions ?" }
            return from == to ? "version v\(from)" : "versions v\(from)…v\(to)"
        }
    }

    /// Every row read is counted once, in exactly one of the row counts: `read` is their sum
    /// (``accounted``). `conflicts`, `delivered` and `webhookDelivered` count other things.
    public struct Counts: Sendable, Equatable, Codable {
        public var read = 0
        /// New participants (events: new event ids).
        public var inserted = 0
        /// Participants whose record changed.
        public var updated = 0
        /// New source keys linked to an existing participant through email or phone (its record replaced).
        public var linked = 0
        /// Rows identical to what the panel holds (events: event ids seen before).
        public var unchanged = 0
        /// Rows older than what the panel already holds for their key (per-key monotonicity).
        public var skippedOlder = 0
        /// Rows not imported because their consent value is not opted in and their identity resolved to no
        /// participant the panel held when they were applied (decided in the writer's transaction).
        public var consentBlocked = 0
        /// Rows the pipeline's validation rejected (sampled in `invalidSamples`).
        public var invalid = 0
        public var deletesIgnored = 0
        public var preimagesIgnored = 0
        /// Rows whose watermark cursor is NULL (counted and reported, never silently dropped).
        public var nullCursor = 0
        /// Events: update post-images ignored (events are immutable; only inserts are taken).
        public var eventUpdatesIgnored = 0
        /// A failed run's rows read but not applied: in batches not yet committed when it stopped, or the row it
        /// stopped at. 0 for any other run.
        public var notApplied = 0
        /// Identity conflicts recorded (a weaker key points at another participant; never merged). A row counted
        /// above may record some.
        public var conflicts = 0
        /// Changes written to the output segments (or a replay's redelivery file) by this run.
        public var delivered = 0
        /// Changes acknowledged by webhook sinks in this run.
        public var webhookDelivered = 0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case read, inserted, updated, linked, unchanged, skippedOlder = "skipped_older"
            case consentBlocked = "consent_blocked", invalid, deletesIgnored = "deletes_ignored"
            case preimagesIgnored = "preimages_ignored", nullCursor = "null_cursor"
            case eventUpdatesIgnored = "event_updates_ignored", notApplied = "not_applied", conflicts, delivered
            case webhookDelivered = "webhook_delivered"
        }

        /// Keys missing in a record of an earlier build are 0.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func n(_ key: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
            read = try n(.read)
            inserted = try n(.inserted)
            updated = try n(.updated)
            linked = try n(.linked)
            unchanged = try n(.unchanged)
            skippedOlder = try n(.skippedOlder)
            consentBlocked = try n(.consentBlocked)
            invalid = try n(.invalid)
            deletesIgnored = try n(.deletesIgnored)
            preimagesIgnored = try n(.preimagesIgnored)
            nullCursor = try n(.nullCursor)
            eventUpdatesIgnored = try n(.eventUpdatesIgnored)
            notApplied = try n(.notApplied)
            conflicts = try n(.conflicts)
            delivered = try n(.delivered)
            webhookDelivered = try n(.webhookDelivered)
        }

        /// Every count with its key in the record, rows read first, then where they went, then the rest.
        public var fields: [(key: String, value: Int)] {
            let all: [(CodingKeys, Int)] = [
                (.read, read), (.inserted, inserted), (.updated, updated), (.linked, linked), (.unchanged, unchanged),
                (.skippedOlder, skippedOlder), (.consentBlocked, consentBlocked), (.invalid, invalid),
                (.deletesIgnored, deletesIgnored), (.preimagesIgnored, preimagesIgnored), (.nullCursor, nullCursor),
                (.eventUpdatesIgnored, eventUpdatesIgnored), (.notApplied, notApplied), (.conflicts, conflicts),
                (.delivered, delivered), (.webhookDelivered, webhookDelivered),
            ]
            return all.map { ($0.0.rawValue, $0.1) }
        }

        /// The rows the counts place somewhere; equals `read` for every run.
        public var accounted: Int {
            inserted + updated + linked + unchanged + skippedOlder + consentBlocked + invalid + deletesIgnored
                + preimagesIgnored + nullCursor + eventUpdatesIgnored + notApplied
        }

        /// Rows applied to the panel (created, changed or linked).
        public var applied: Int { inserted + updated + linked }

        public static func += (a: inout Counts, b: Counts) {
            a.read += b.read
            a.inserted += b.inserted
            a.updated += b.updated
            a.linked += b.linked
            a.unchanged += b.unchanged
            a.skippedOlder += b.skippedOlder
            a.consentBlocked += b.consentBlocked
            a.invalid += b.invalid
            a.deletesIgnored += b.deletesIgnored
            a.preimagesIgnored += b.preimagesIgnored
            a.nullCursor += b.nullCursor
            a.eventUpdatesIgnored += b.eventUpdatesIgnored
            a.notApplied += b.notApplied
            a.conflicts += b.conflicts
            a.delivered += b.delivered
            a.webhookDelivered += b.webhookDelivered
        }

        /// What the writer did with the rows handed to it.
        public static func += (a: inout Counts, b: PanelStore.ApplyOutcome) {
            a.inserted += b.inserted
            a.updated += b.updated
            a.linked += b.linked
            a.unchanged += b.unchanged
            a.skippedOlder += b.skippedOlder
            a.consentBlocked += b.consentBlocked
            a.conflicts += b.conflicts
        }

        /// What the reading side counted before handing rows to the writer.
        static func += (a: inout Counts, b: ChangeCollector.Counts) {
            a.read += b.read
            a.deletesIgnored += b.deletes
            a.preimagesIgnored += b.preimages
            a.invalid += b.invalid
            a.consentBlocked += b.consentBlocked
            a.nullCursor += b.nullCursor
            a.eventUpdatesIgnored += b.updatesIgnored
        }
    }

    /// The layout the record was read in (``currentVersion`` for a record of this build); written as the current.
    public var recordVersion = RunRecord.currentVersion
    public var runID: UInt64 = 0
    public var pipeline: String
    /// The source table or view (`source`).
    public var table: String
    public var mode: Mode = .cdf
    /// Why `mode: auto` chose ``mode`` (`delta.enableChangeDataFeed is true`); nil when the pipeline named it.
    public var modeReason: String?
    public var status: Status = .running
    public var startedAt: Date
    public var seconds: Double = 0
    public var host: String
    public var user: String
    /// The process that ran it: its pid, and its ``WriterLock/processToken`` (pids repeat, in containers at once;
    /// nil in records written before it was recorded).
    public var processID: Int32 = getpid()
    public var processToken: String? = WriterLock.processToken
    /// The latest version of the source when the run started (nil: not asked, or a view).
    public var latestVersion: Int64?
    /// The table version of the pipeline's checkpoint when the run started (nil: never synced, or a watermark).
    public var checkpointBefore: Int64?
    /// The table version of the pipeline's checkpoint when the run ended (nil: none yet, or a watermark).
    public var checkpointVersion: Int64?
    /// When the run's commits reached the disk: `commit` (each one) or `run` (`sync --durability run`: once,
    /// before delivery).
    public var durability = "commit"
    /// When the last version the run read completely (``toVersion``) was committed at the source, as
    /// `DESCRIBE HISTORY` gives it: the age of the newest change the panel holds from this run (freshness) and how
    /// long it took to be delivered. Nil when the run read no version or the history did not say.
    public var lastCommitAt: String?
    /// Watermark mode: the cursor of the checkpoint when the run started, and after it.
    public var watermarkBefore: String?
    public var watermark: String?
    /// What the run read, in order (see ``Part``); empty when it read nothing (no new commits).
    public var parts: [Part] = []
    public var statementIDs: [String] = []
    public var counts = Counts()
    public var invalidSamples: [String] = []
    public var bytesReceived = 0
    /// The process's peak resident set size when the run ended (`VmHWM`, bytes; 0 where /proc is absent).
    /// Design §2.4: it must not grow with the size of a table or a result.
    public var peakResidentBytes = 0
    public var outputFiles: [String] = []
    public var warnings: [String] = []
    /// Column changes of the source inside the versions read (a rename, an added or dropped column), which the run
    /// read across: e.g. `v9 column email renamed to email_address`.
    public var schemaChanges: [String] = []
    /// A refresh's findings (nil for other runs).
    public var refresh: Refresh?
    /// What the pipeline's activation decided and delivered in this run (nil: no activation; docs/activation.md).
    public var invitations: InvitationCounts?
    public var error: String?

    public init(pipeline: String, table: String) {
        self.pipeline = pipeline
        self.table = table
        // Whole seconds: the record stores the time so, and a record read back equals the one written.
        startedAt = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        host = ProcessInfo.processInfo.hostName
        user = Self.currentUser()
    }

    /// Who runs the process, for the audit record: `$USER` when set (what the operator logged in as, also under
    /// `sudo -E`), else the name the password database gives the effective uid — cron jobs, systemd units and
    /// containers often run without `$USER` — else `uid <n>` for a uid with no entry (a container's arbitrary uid).
    public static func currentUser(environment: [String: String] = ProcessInfo.processInfo.environment,
                                   uid: uid_t = geteuid()) -> String {
        if let name = environment["USER"], !name.isEmpty { return name }
        var buffer = [CChar](repeating: 0, count: 4096)
        let name: String? = buffer.withUnsafeMutableBufferPointer { b in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            guard let base = b.baseAddress, getpwuid_r(uid, &entry, base, b.count, &result) == 0, result != nil,
                let name = entry.pw_name
            else { return nil }
            return String(cString: name)
        }
        if let name, !name.isEmpty { return name }
        return "uid \(uid)"
    }

    /// The first version the run read (its first part's), nil when it read none.
    public var fromVersion: Int64? { parts.lazy.compactMap(\.fromVersion).first }
    /// The last version the run read completely: the version it brought the panel to; nil when it read none.
    public var toVersion: Int64? { parts.lazy.filter(\.complete).compactMap(\.toVersion).last }

    /// Notes that a statement read `rows` rows of `part` (its mode and versions): joins the last part when it
    /// continues it (the same mode, the next versions).
    mutating func noteRead(_ part: Part, rows: Int, complete: Bool = true) {
        if complete, var last = parts.last, last.complete, last.mode == part.mode,
            last.mode == .watermark
                || (last.mode == .cdf && last.toVersion.map { $0 + 1 } == part.fromVersion && part.toVersion != nil)
        {
            last.toVersion = part.toVersion
            last.statements += 1
            last.rowsRead += rows
            parts[parts.count - 1] = last
            return
        }
        var p = part
        p.statements = 1
        p.rowsRead = rows
        p.complete = complete
        parts.append(p)
    }

    /// The record as stored (keys sorted, so equal records are equal bytes).
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// A stored record, of this build or an earlier one.
    public init(json: some Collection<UInt8>) throws {
        self = try JSONDecoder().decode(RunRecord.self, from: Data(json))
    }

    // MARK: Shorthands for the counts (how the reading side, callers and tests name them)

    public var rowsRead: Int { get { counts.read } set { counts.read = newValue } }
    public var inserted: Int { get { counts.inserted } set { counts.inserted = newValue } }
    public var updated: Int { get { counts.updated } set { counts.updated = newValue } }
    public var linked: Int { get { counts.linked } set { counts.linked = newValue } }
    public var unchanged: Int { get { counts.unchanged } set { counts.unchanged = newValue } }
    public var skippedOlder: Int { get { counts.skippedOlder } set { counts.skippedOlder = newValue } }
    public var consentBlocked: Int { get { counts.consentBlocked } set { counts.consentBlocked = newValue } }
    public var invalid: Int { get { counts.invalid } set { counts.invalid = newValue } }
    public var deletesIgnored: Int { get { counts.deletesIgnored } set { counts.deletesIgnored = newValue } }
    public var preimagesIgnored: Int { get { counts.preimagesIgnored } set { counts.preimagesIgnored = newValue } }
    public var nullCursor: Int { get { counts.nullCursor } set { counts.nullCursor = newValue } }
    public var eventUpdatesIgnored: Int {
        get { counts.eventUpdatesIgnored }
        set { counts.eventUpdatesIgnored = newValue }
    }
    public var conflicts: Int { get { counts.conflicts } set { counts.conflicts = newValue } }
    public var delivered: Int { get { counts.delivered } set { counts.delivered = newValue } }
    public var webhookDelivered: Int { get { counts.webhookDelivered } set { counts.webhookDelivered = newValue } }
}

/// The name the engine and its callers used before the record was one type.
public typealias SyncSummary = RunRecord

extension RunRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case recordVersion = "record_version", runID = "run_id", pipeline, table = "source", mode, status
        case modeReason = "mode_reason"
        case startedAt = "started_at", seconds, host, user, processID = "pid", processToken = "process"
        case fromVersion = "from_version", toVersion = "to_version", latestVersion = "latest_version"
        case checkpointBefore = "checkpoint_before", checkpointVersion = "checkpoint_version", durability
        case watermarkBefore = "watermark_before", watermark, parts, statementIDs = "statement_ids", counts
        case invalidSamples = "invalid_samples", bytesReceived = "bytes_received"
        case peakResidentBytes = "peak_rss_bytes", outputFiles = "output_files", warnings
        case schemaChanges = "schema_changes", error, lastCommitAt = "last_commit_at"
        case refresh
        case invitations
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.currentVersion, forKey: .recordVersion)
        try c.encode(runID, forKey: .runID)
        try c.encode(pipeline, forKey: .pipeline)
        try c.encode(table, forKey: .table)
        try c.encode(mode, forKey: .mode)
        try c.encodeIfPresent(modeReason.map { "auto → \(mode.rawValue) (\($0))" }, forKey: .modeReason)
        try c.encode(status, forKey: .status)
        try c.encode(startedAtText, forKey: .startedAt)
        // Milliseconds; a non-finite duration (a clock gone backwards cannot make one, but no record is lost to it).
        try c.encode(seconds.isFinite ? (seconds * 1000).rounded() / 1000 : 0, forKey: .seconds)
        try c.encode(host, forKey: .host)
        try c.encode(user, forKey: .user)
        try c.encode(processID, forKey: .processID)
        try c.encode(processToken, forKey: .processToken)
        try c.encode(fromVersion, forKey: .fromVersion)
        try c.encode(toVersion, forKey: .toVersion)
        try c.encode(latestVersion, forKey: .latestVersion)
        try c.encode(checkpointBefore, forKey: .checkpointBefore)
        try c.encode(checkpointVersion, forKey: .checkpointVersion)
        try c.encode(lastCommitAt, forKey: .lastCommitAt)
        try c.encode(durability, forKey: .durability)
        try c.encode(watermarkBefore, forKey: .watermarkBefore)
        try c.encode(watermark, forKey: .watermark)
        try c.encode(parts, forKey: .parts)
        try c.encode(statementIDs, forKey: .statementIDs)
        try c.encode(counts, forKey: .counts)
        try c.encode(invalidSamples, forKey: .invalidSamples)
        try c.encode(bytesReceived, forKey: .bytesReceived)
        try c.encode(peakResidentBytes, forKey: .peakResidentBytes)
        try c.encode(outputFiles, forKey: .outputFiles)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(schemaChanges, forKey: .schemaChanges)
        try c.encodeIfPresent(refresh, forKey: .refresh)
        try c.encode(invitations, forKey: .invitations)
        try c.encode(error, forKey: .error)
    }

    /// `started_at` as the record stores it (ISO 8601, UTC).
    public var startedAtText: String { ISO8601DateFormatter().string(from: startedAt) }

    /// Why a stored record could not be read, in one line (a `DecodingError` names the key).
    public static func unreadable(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .keyNotFound(let key, let c):
            return "no \((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + c.debugDescription
        @unknown default:
            return "\(e)"
        }
    }

    /// Reads a record of any layout. `run_id`, `pipeline`, `source`, `mode` and `status` are required; anything an
    /// earlier build did not write reads as empty (0, null, []).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        recordVersion = try c.decodeIfPresent(Int.self, forKey: .recordVersion) ?? 1
        runID = try c.decode(UInt64.self, forKey: .runID)
        pipeline = try c.decode(String.self, forKey: .pipeline)
        table = try c.decode(String.self, forKey: .table)
        mode = try c.decode(Mode.self, forKey: .mode)
        // Stored as `auto → <mode> (<reason>)`.
        modeReason = try c.decodeIfPresent(String.self, forKey: .modeReason).map { text in
            guard let open = text.firstIndex(of: "("), text.hasSuffix(")") else { return text }
            return String(text[text.index(after: open)..<text.index(before: text.endIndex)])
        }
        status = try c.decode(Status.self, forKey: .status)
        let started = try c.decodeIfPresent(String.self, forKey: .startedAt)
        startedAt = started.flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date(timeIntervalSince1970: 0)
        seconds = try c.decodeIfPresent(Double.self, forKey: .seconds) ?? 0
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? ""
        user = try c.decodeIfPresent(String.self, forKey: .user) ?? ""
        processID = try c.decodeIfPresent(Int32.self, forKey: .processID) ?? 0
        processToken = try c.decodeIfPresent(String.self, forKey: .processToken)
        latestVersion = try c.decodeIfPresent(Int64.self, forKey: .latestVersion)
        checkpointVersion = try c.decodeIfPresent(Int64.self, forKey: .checkpointVersion)
        lastCommitAt = try c.decodeIfPresent(String.self, forKey: .lastCommitAt)
        durability = try c.decodeIfPresent(String.self, forKey: .durability) ?? "commit"
        watermark = try c.decodeIfPresent(String.self, forKey: .watermark)
        statementIDs = try c.decodeIfPresent([String].self, forKey: .statementIDs) ?? []
        counts = try c.decodeIfPresent(Counts.self, forKey: .counts) ?? Counts()
        invalidSamples = try c.decodeIfPresent([String].self, forKey: .invalidSamples) ?? []
        bytesReceived = try c.decodeIfPresent(Int.self, forKey: .bytesReceived) ?? 0
        peakResidentBytes = try c.decodeIfPresent(Int.self, forKey: .peakResidentBytes) ?? 0
        outputFiles = try c.decodeIfPresent([String].self, forKey: .outputFiles) ?? []
        warnings = try c.decodeIfPresent([String].self, forKey: .warnings) ?? []
        schemaChanges = try c.decodeIfPresent([String].self, forKey: .schemaChanges) ?? []
        refresh = try c.decodeIfPresent(Refresh.self, forKey: .refresh)
        invitations = try c.decodeIfPresent(InvitationCounts.self, forKey: .invitations)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        if recordVersion >= 2 {
            checkpointBefore = try c.decodeIfPresent(Int64.self, forKey: .checkpointBefore)
            watermarkBefore = try c.decodeIfPresent(String.self, forKey: .watermarkBefore)
            parts = try c.decodeIfPresent([Part].self, forKey: .parts) ?? []
        } else {
            // Layout 1: `from_version` was the checkpoint before the run (a replay's: the version before its
            // range; a replay never moves the checkpoint), `to_version` the last version read or the snapshot's.
            let from = try c.decodeIfPresent(Int64.self, forKey: .fromVersion)
            let to = try c.decodeIfPresent(Int64.self, forKey: .toVersion)
            // (A record still `running` was written when the run started: its `from_version` is the checkpoint.)
            checkpointBefore = mode.isReplay && status != .running ? checkpointVersion : from
            parts = Self.version1Parts(mode: mode, from: from, to: to, rows: counts.read,
                statements: statementIDs.count,
                snapshot: warnings.contains { $0.hasPrefix("start: latest") } ? .snapshot
                    : warnings.contains { $0.contains("resynced from a snapshot") } ? .snapshotFallback : nil,
                succeeded: status == .succeeded)
        }
    }

    /// The parts a layout-1 record read, from its mode and versions: one part (a fallback's cdf statements before
    /// the snapshot, if any, were not told apart). `snapshot`: the snapshot its warnings say it took instead of
    /// change data (`start: latest`, or change data gone).
    static func version1Parts(mode: Mode, from: Int64?, to: Int64?, rows: Int, statements: Int,
                              snapshot: Part.Mode?, succeeded: Bool) -> [Part] {
        // `to_version` was set once a statement's versions (or the snapshot) were read whole: a version part is
        // complete even in a failed run; watermark pages are complete when the run succeeded.
        switch mode {
        case .watermark:
            guard statements > 0 || rows > 0 else { return [] }
            return [Part(mode: .watermark, statements: statements, rowsRead: rows, complete: succeeded)]
        case .snapshot:
            guard let to else { return [] }
            return [Part(mode: snapshot ?? .snapshot, fromVersion: to, toVersion: to, statements: statements,
                rowsRead: rows)]
        case .cdf, .replay, .replayDryRun, .refresh, .refreshDryRun:
            guard let to else { return [] }
            if let snapshot {
                return [Part(mode: snapshot, fromVersion: to, toVersion: to, statements: statements, rowsRead: rows)]
            }
            // A first sync recorded no checkpoint: it read from v0, or from its start version (not recorded).
            return [Part(mode: .cdf, fromVersion: from.map { $0 + 1 } ?? 0, toVersion: to, statements: statements,
                rowsRead: rows)]
        }
    }
}

// MARK: - Status

extension RunRecord {
    /// What the record's status means now: a `running` record is `interrupted` unless the process that wrote it
    /// still holds the state directory's writer lock (`holder`, nil when no process holds it).
    public func effectiveStatus(holder: WriterLock.Holder?) -> Status {
        guard status == .running else { return status }
        guard let holder else { return .interrupted }
        if let processToken { return processToken == holder.process ? .running : .interrupted }
        return processID == holder.pid ? .running : .interrupted
    }

    /// The record as it reads now: a `running` record whose process no longer holds the state directory's writer
    /// lock (`holder`) is `interrupted` (``markInterrupted()``); any other is returned as it is.
    public func current(holder: WriterLock.Holder?) -> RunRecord {
        guard status == .running, effectiveStatus(holder: holder) == .interrupted else { return self }
        var r = self
        r.markInterrupted()
        return r
    }

    /// Marks a `running` record `interrupted`, with the reason as its error.
    public mutating func markInterrupted() {
        guard status == .running else { return }
        status = .interrupted
        error = Self.interruptedMessage(pid: processID)
    }

    /// Why a run was interrupted, for its record and the CLI.
    static func interruptedMessage(pid: Int32?) -> String {
        "process " + (pid.map { "\($0) " } ?? "") + "ended before the run finished (killed, crashed or host stopped); "
            + "what it applied up to its checkpoint stands"
    }
}

// MARK: - Output

extension RunRecord {
    /// Whether the run found nothing to read.
    public var noNewCommits: Bool { parts.isEmpty && error == nil && rowsRead == 0 && mode != .watermark }

    public var rowsPerSecond: Double { seconds > 0 ? Double(rowsRead) / seconds : 0 }

    /// What the run read, part by part, e.g. `versions v5…v8`, `versions v5…v6, then snapshot at v9 (change data
    /// gone)`, `rows after 2026-03-01T00:00:00Z up to 2026-03-02T00:00:00Z`; nil when it read nothing.
    public var readDescription: String? {
        guard !parts.isEmpty else { return nil }
        return parts.map { p in
            guard p.mode == .watermark else { return p.description }
            // A refresh reads a watermark source from its first row, whatever the checkpoint.
            let after = mode.isRefresh ? "from the first row " : watermarkBefore.map { "after \($0) " } ?? ""
            return "rows " + after + "up to \(watermark ?? "the start")"
                + (p.complete ? "" : " (incomplete: the run stopped in it)")
        }.joined(separator: ", then ")
    }

    /// Where a failed run left the pipeline: its checkpoint (unchanged, or how far it moved) and the changes it
    /// applied before the failure, which stay in the panel — the next run reads them again and finds them
    /// unchanged (design §2.2).
    public var failureState: String {
        let checkpoint: String
        let replay = mode.isReplay
        if replay {
            let at = checkpointVersion.map { "v\($0)" } ?? "the beginning (never synced)"
            checkpoint = "checkpoint unchanged at \(at) (a replay never moves it)"
        } else if mode == .watermark {
            let from = watermarkBefore.map { "watermark \($0)" } ?? "the beginning (never synced)"
            checkpoint = watermark == watermarkBefore
                ? "checkpoint unchanged at \(from)"
                : "checkpoint moved from \(from) to watermark \(watermark ?? "")"
        } else {
            let from = checkpointBefore.map { "v\($0)" } ?? "the beginning (never synced)"
            if let now = checkpointVersion, now != checkpointBefore {
                checkpoint = "checkpoint moved from \(from) to v\(now)"
            } else {
                checkpoint = "checkpoint unchanged at \(from)"
            }
        }
        let applied = counts.applied
        guard applied > 0 else {
            return checkpoint + (replay ? "; nothing was applied" : "; nothing after it was applied")
        }
        return checkpoint + "; \(applied) change(s) applied before the failure (\(inserted) inserted, "
            + "\(updated + linked) updated) stay in the panel and read as unchanged when the "
            + "\(replay ? "replay" : "sync") runs again"
    }

    /// The row counts as output lines, label and number first: every row read is on exactly one of them, so their
    /// numbers add up to `rows read` (a count that is 0 is left out, except created, updated and unchanged).
    /// A dry run's say what a replay would do.
    public var countLines: [String] {
        let dry = mode == .replayDryRun || mode == .refreshDryRun
        let c = counts
        var lines: [(String, Int, String, Bool)] = [
            (dry ? "would create" : "inserted", c.inserted, "", true),
            (dry ? "would update" : "updated", c.updated, "", true),
            (dry ? "would link" : "linked", c.linked, "new source key(s) joined to a participant by email/phone",
             false),
            ("unchanged", c.unchanged, "", true),
            ("skipped", c.skippedOlder, "older than the panel", false),
            ("consent", c.consentBlocked, "not opted in, not imported", false),
            ("invalid", c.invalid, invalidSamples.first.map { "e.g. \($0)" } ?? "", false),
            ("deletes", c.deletesIgnored, "ignored", false),
            ("pre-images", c.preimagesIgnored, "ignored", false),
            ("null cursor", c.nullCursor, "rows without a cursor value, cannot be synced by watermark", false),
            ("event updates", c.eventUpdatesIgnored, "ignored (events are immutable)", false),
            ("not applied", c.notApplied, "read, but not applied before the run stopped", false),
        ]
        lines = lines.filter { $0.3 || $0.1 != 0 }
        return lines.map { label, n, note, _ in
            "  " + label.padding(toLength: 15, withPad: " ", startingAt: 0) + "\(n)" + (note.isEmpty ? "" : "  \(note)")
        }
    }

    /// The human summary printed after a run.
    public func render() -> String {
        var lines: [String] = []
        let kind = mode.isReplay ? "replay" : mode.isRefresh ? "refresh" : "sync"
        if let error {
            lines.append("\(kind) of \(table) FAILED after \(String(format: "%.2f", seconds)) s: \(error)")
            lines.append("  " + failureState)
            return lines.joined(separator: "\n")
        }
        if noNewCommits {
            let from = checkpointBefore.map { "v\($0)" } ?? "the beginning"
            lines.append("sync of \(table): no new commits (checkpoint \(from), latest v\(latestVersion ?? -1)); "
                + "nothing changed")
            // A repair of a delivery killed part-way, or webhook batches sent again, happen on such a run too.
            if webhookDelivered > 0 { lines.append("  webhook        \(webhookDelivered) change(s) acknowledged") }
            lines += invitationLines
            for w in warnings { lines.append("  warning: \(w)") }
            return lines.joined(separator: "\n")
        }
        let what = readDescription ?? "nothing"
        if mode == .replayDryRun || mode == .refreshDryRun {
            lines.append("\(mode.rawValue) of \(table) \(what) (run \(runID)): nothing was applied, "
                + (mode == .refreshDryRun ? "marked, " : "") + "delivered or checkpointed; only this run's audit "
                + "record was written")
        } else {
            lines.append("\(kind) of \(table) [\(mode.rawValue)] \(what) (run \(runID))")
        }
        if let modeReason { lines.append("  mode           auto → \(mode.rawValue) (\(modeReason))") }
        let mib = String(format: "%.1f", Double(bytesReceived) / 1_048_576)
        lines.append("  rows read      \(rowsRead)  (\(mib) MiB of JSON, \(statementIDs.count) statement(s))")
        lines += countLines
        if conflicts > 0 { lines.append("  conflicts      \(conflicts)  identity conflict(s) recorded (not merged)") }
        if let r = refresh {
            let dry = mode == .refreshDryRun
            lines.append("  in panel       \(r.keys) source key(s) of the pipeline")
            lines.append("  absent         \(r.absent) key(s) the source no longer has"
                + " (\(r.newlyAbsent) \(dry ? "would be" : "newly") marked \"in_source\": false"
                + (r.absent > r.newlyAbsent ? ", \(r.absent - r.newlyAbsent) marked before" : "") + ")")
            if !r.absentSample.isEmpty {
                lines.append("    " + r.absentSample.joined(separator: ", ")
                    + (r.absent > r.absentSample.count ? ", … (\(r.absent - r.absentSample.count) more)" : ""))
            }
            if let list = r.absentList { lines.append("  absent list    \(list)") }
        }
        if mode != .replayDryRun && mode != .refreshDryRun {
            lines.append("  delivered      \(delivered) change(s)"
                + (outputFiles.isEmpty ? "" : " → \(outputFiles.joined(separator: ", "))"))
        }
        if webhookDelivered > 0 { lines.append("  webhook        \(webhookDelivered) change(s) acknowledged") }
        lines.append(String(format: "  time           %.2f s, %.0f rows/s", seconds, rowsPerSecond)
            + (peakResidentBytes > 0
                ? String(format: ", peak memory %.0f MB", Double(peakResidentBytes) / 1_048_576) : ""))
        if durability == "run" {
            lines.append("  durability     run: commits not synced one by one; the store was synced before delivery")
        }
        for c in schemaChanges { lines.append("  schema change  \(c)") }
        lines += invitationLines
        for w in warnings { lines.append("  warning: \(w)") }
        return lines.joined(separator: "\n")
    }
}
