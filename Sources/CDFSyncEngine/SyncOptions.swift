import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Options of one sync: the source, how rows map to the panel, and how to read.
public struct SyncOptions: Sendable {
    /// The source table or view (for a custom SQL source, a placeholder named ``Pipeline/customSQLSourceLabel``:
    /// nothing reads it).
    public var table: QualifiedName
    /// A pipeline's custom SQL source as the read-only guard accepted it (checked again for every run, when the
    /// options are made); nil for a table or view. Statements wrap it (``SQL/customSnapshot(_:columns:conditions:)``).
    public var customSQL: GuardedSQL?
    /// Passthrough mapping (no pipeline): the column holding the participant's external id.
    public var keyColumn: String
    /// Passthrough mapping: columns to carry into the record; nil = every column.
    public var columns: [String]?
    /// A pipeline's mapping, mode, start, filters, consent and validation; nil = passthrough CDF.
    public var spec: Pipeline?
    /// The state key of this sync (checkpoint, identity scope).
    public var pipeline: String
    /// Directory of the NDJSON output segments.
    public var outputDirectory: String
    /// Mode of the delivered files (segments, manifest, owner file, replay files): the ndjson sink's `file_mode`,
    /// else owner only; directories created for them get x where r is set (``PrivateFiles``).
    public var fileMode: mode_t = PrivateFiles.fileMode
    /// Rows per LMDB write transaction.
    public var batchSize = 10_000
    /// At most this many versions per `table_changes` statement; longer ranges are split.
    public var maxVersionsPerStatement: Int64 = 500
    /// At most about this many change rows per statement (estimated from the history's operation metrics).
    public var maxRowsPerStatement: Int64 = 5_000_000
    /// Force INLINE or EXTERNAL_LINKS; nil picks per statement by expected size.
    public var disposition: Statement.Disposition?
    /// Version to start from when there is no checkpoint (passthrough; pipelines use `start`).
    public var startVersion: Int64 = 0
    /// Take a snapshot at the latest version when change data for the range is gone.
    public var fallBackToSnapshot = true
    /// At most this many `DESCRIBE HISTORY` entries are read to size statements and find schema changes; a schema
    /// change older than them is still read across, by splitting the range the warehouse refuses.
    public var historyLimit: Int64 = 10_000
    /// How much lower than the rest of the engine the reading side (download and decode) is scheduled: each
    /// statement is read on a thread of its own at `nice` + this (see ``ReadingThread``); 0 reads on the caller's
    /// thread at its priority, as a replay always does (its reading is the critical path).
    public var readingNiceness: Int32 = ReadingThread.defaultNiceness
    /// The pipeline's activation as the writer applies it (docs/activation.md); nil for `import`.
    public var activation: PanelStore.ActivationSettings?

    /// A passthrough CDF sync of `table` keyed by `keyColumn`.
    public init(table: QualifiedName, keyColumn: String, columns: [String]? = nil, pipeline: String? = nil,
                outputDirectory: String) {
        self.table = table
        self.keyColumn = keyColumn
        self.columns = columns
        self.pipeline = pipeline ?? table.description
        self.outputDirectory = outputDirectory
    }

    /// A sync driven by a pipeline definition.
    public init(pipeline spec: Pipeline, outputDirectory: String? = nil) throws {
        if spec.hasCustomSQL {
            do {
                customSQL = try spec.guardedSQL()
            } catch {
                throw SyncError("source.sql: \(error)",
                    remedy: "Rewrite the query as one read-only SELECT; `cdfsync pipeline validate` checks it.")
            }
            guard spec.mode != .cdf else {
                throw SyncError("mode: cdf, but the source is custom SQL, which has no change data feed",
                    remedy: "Use mode: watermark (with a cursor column) or mode: snapshot.")
            }
            table = QualifiedName(catalog: "", schema: "", table: Pipeline.customSQLSourceLabel)
        } else {
            do {
                table = try QualifiedName(parsing: spec.source)
            } catch {
                throw SyncError("source: \(error.message)", remedy: "Write the source as catalog.schema.table.")
            }
        }
        keyColumn = spec.mapping["external_id"] ?? spec.mapping["event_id"] ?? ""
        self.spec = spec
        activation = spec.activationSettings
        pipeline = spec.name
        // The name becomes a directory below .cdfsync/out: it must stay there (`../../x` must not).
        guard Pipeline.nameProblem(spec.name, maxBytes: .max) == nil,
            let defaultOutput = FilePaths.child(".cdfsync/out", spec.name)
        else {
            throw SyncError("name: \(Pipeline.nameProblem(spec.name, maxBytes: .max) ?? "is not a file name")",
                remedy: "Name the pipeline with \(Pipeline.nameCharacters).")
        }
        let sink = spec.sinks.first { $0.type == .ndjson }
        self.outputDirectory = outputDirectory ?? sink?.directory ?? defaultOutput
        do {
            fileMode = try sink?.parsedFileMode().map { mode_t($0) } ?? PrivateFiles.fileMode
        } catch {
            throw SyncError("sinks: file_mode \(error.message)", remedy: "Give an octal mode such as \"0640\".")
        }
    }

    /// The source as messages and run records name it: the table, or `custom SQL`.
    public var sourceLabel: String { customSQL == nil ? table.description : Pipeline.customSQLSourceLabel }

    var mapping: RowMapping { spec.map { .pipeline($0) } ?? .passthrough(keyColumn: keyColumn, columns: columns) }

    /// The columns to select: the pipeline's mapped and attribute columns, or the passthrough list.
    var selectedColumns: [String]? {
        if let spec {
            var cols: [String] = []
            for f in (spec.kind == .participants ? Pipeline.participantFields : Pipeline.eventFields) {
                if let c = spec.mapping[f], !cols.contains(c) { cols.append(c) }
            }
            for a in spec.attributes where !cols.contains(a.column) { cols.append(a.column) }
            if let c = spec.consent?.column, !cols.contains(c) { cols.append(c) }
            if let c = spec.watermark?.column, !cols.contains(c) { cols.append(c) }
            return cols
        }
        return columns.map { $0.contains(keyColumn) ? $0 : [keyColumn] + $0 }
    }
}


/// Replay of an already-synced range.
public struct ReplayOptions: Sendable {
    public var fromVersion: Int64
    public var toVersion: Int64?
    /// Print what would be created, updated and skipped; write nothing.
    public var dryRun = false
    /// Also write every replayed post-image to `replay-<run>-v<from>-v<to>.ndjson.zst`, applied or not.
    public var redeliver = false

    public init(fromVersion: Int64, toVersion: Int64? = nil, dryRun: Bool = false, redeliver: Bool = false) {
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.dryRun = dryRun
        self.redeliver = redeliver
    }
}
