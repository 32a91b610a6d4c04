import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Sync: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sync a pipeline (or a CDF table given by flags) from its checkpoint to the latest version.",
            discussion: """
                With a pipeline file, its mode, start, mapping, consent, filters and sinks apply. Without one, \
                --table and --key give a CDF sync that copies every column.
                """)

        @OptionGroup var source: SourceOptions
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Option(help: "Directory for the zstd-compressed NDJSON change files.")
        var outputDir: String?

        @Option(help: "Rows applied per LMDB transaction (larger: fewer durable commits, more memory).")
        var batchSize: Int = 10_000

        @Option(help: "Result disposition: auto (by expected size), inline or external-links.")
        var disposition: DispositionChoice = .auto

        @Option(help: "External-link chunks downloaded in parallel (each holds one chunk in memory; raise it against remote cloud storage).")
        var inFlight: Int = 2

        @Option(help: "At most this many versions per table_changes statement.")
        var maxVersionsPerStatement: Int64 = 500

        @Option(help: "Version to start from when there is no checkpoint (without a pipeline file).")
        var startVersion: Int64 = 0

        @Option(help: "Also write the run's record as JSON to this file.")
        var summaryJson: String?

        @Option(help: ArgumentHelp(
            "When applied changes reach the disk: commit (at each checkpoint's commit) or run (once, after the last batch, before delivery).",
            discussion: "run skips the per-commit fsync; a power loss or OS crash during the run can leave the state directory unreadable (resync into a new one). A killed process loses nothing."))
        var durability: Durability = .commit

        @Option(help: ArgumentHelp(
            "How much lower the reading side (download and decode) is scheduled than the writer, as added niceness (0-19; 0: same priority).",
            discussion: "The writer's chain (apply, outbox compression, durable commit) is what a sync waits for; the reading side is faster and yields to it. It then also yields to other processes at normal priority on a busy host: 0 turns that off."))
        var readingNiceness: Int32 = ReadingThread.defaultNiceness

        @Flag(help: "Log what the run reads and applies (the same as --log-level info).")
        var verbose = false

        @OptionGroup(title: "Logging") var logging: LoggingOptions

        @Flag(help: "Print the run's record as one JSON object (the --summary-json form) instead of the text summary; a failed run's too.")
        var json = false

        @OptionGroup var display: ProgressOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard (0...19).contains(readingNiceness) else {
                throw ValidationError(
                    "--reading-niceness must be between 0 (read at the sync's own priority) and 19; got \(readingNiceness).")
            }
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 row; got \(batchSize).") }
            guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1 chunk; got \(inFlight).") }
            guard maxVersionsPerStatement >= 1 else {
                throw ValidationError("--max-versions-per-statement must be at least 1; got \(maxVersionsPerStatement).")
            }
            guard startVersion >= 0 else {
                throw ValidationError("--start-version must be 0 or more (Delta versions start at 0); got \(startVersion).")
            }
        }

        func run() throws {
            try reportingErrors {
                let (sync, _) = try makeSync(pipelinePath: source.pipeline, table: source.table, key: source.key,
                    columns: source.columns, outputDir: outputDir,
                    connection: connection, state: state,
                    durable: durability == .commit) { options, client in
                    options.readingNiceness = readingNiceness
                    options.batchSize = batchSize
                    options.startVersion = startVersion
                    options.maxVersionsPerStatement = maxVersionsPerStatement
                    options.disposition = disposition.value
                    client.externalLinksInFlight = inFlight
                }
                let renderer = ProgressRenderer(label: "sync", mode: display.mode(logging: logging))
                sync.progress = renderer
                let summary = try reportingRecord(json: json) { try renderer.around { try sync.run() } }
                if json {
                    JSONOutput.emit(try summary.json())
                } else {
                    print(summary.render())
                    if !summary.outputFiles.isEmpty { print("  output         \(sync.options.outputDirectory)") }
                }
                if let path = summaryJson { try PrivateFiles.write(summary.json(), to: path) }
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read a version range of a pipeline's source; per-key monotonicity means nothing newer changes.")

        @OptionGroup var source: SourceOptions
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Option(help: "First version to read.")
        var fromVersion: Int64

        @Option(help: "Last version to read (default: latest).")
        var toVersion: Int64?

        @Flag(help: "Print what would be created, updated and skipped; write nothing but the run's audit record.")
        var dryRun = false

        @Flag(help: "Also write every replayed post-image to a replay-*.ndjson.zst file, already applied or not.")
        var redeliver = false

        @Option(help: "Directory for output files.")
        var outputDir: String?

        @Option(help: "Also write the run's record as JSON to this file.")
        var summaryJson: String?

        @Flag(help: "Print the run's record as one JSON object (the --summary-json form) instead of the text summary; a failed run's too.")
        var json = false

        @OptionGroup var display: ProgressOptions
        @OptionGroup(title: "Logging") var logging: LoggingOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard fromVersion >= 0 else {
                throw ValidationError("--from-version must be 0 or more (Delta versions start at 0); got \(fromVersion).")
            }
            if let toVersion, toVersion < fromVersion {
                throw ValidationError("--to-version (\(toVersion)) must not be below --from-version (\(fromVersion)).")
            }
        }

        func run() throws {
            try reportingErrors {
                let (sync, _) = try makeSync(pipelinePath: source.pipeline, table: source.table, key: source.key,
                    columns: source.columns, outputDir: outputDir,
                    connection: connection, state: state) { _, _ in }
                let renderer = ProgressRenderer(label: dryRun ? "replay (dry run)" : "replay",
                    mode: display.mode(logging: logging))
                sync.progress = renderer
                let summary = try reportingRecord(json: json) {
                    try renderer.around {
                        try sync.replay(ReplayOptions(fromVersion: fromVersion, toVersion: toVersion, dryRun: dryRun,
                            redeliver: redeliver))
                    }
                }
                if json { JSONOutput.emit(try summary.json()) } else { print(summary.render()) }
                if let path = summaryJson { try PrivateFiles.write(summary.json(), to: path) }
            }
        }
    }
}

/// Runs a sync or replay; with `json`, a run that fails still prints its record (status `failed`, `error`) as the
/// command's JSON document before the error goes on to ``reportingErrors(_:)``.
func reportingRecord(json: Bool, _ body: () throws -> SyncSummary) throws -> SyncSummary {
    do {
        return try body()
    } catch let failure as SyncFailure {
        if json, let record = try? failure.summary.json() { JSONOutput.emit(record) }
        throw failure
    }
}

/// What `sync` and `replay` run on: a pipeline file, or a CDF table given by flags.
struct SourceOptions: ParsableArguments {
    @Argument(help: "A pipeline YAML file (see docs/pipelines.md).")
    var pipeline: String?

    @Option(help: "The source table, catalog.schema.table (without a pipeline file).")
    var table: String?

    @Option(help: "Column holding the participant's external id (without a pipeline file).")
    var key: String = "participant_id"

    @Option(help: "Comma-separated columns to import (default: all; without a pipeline file).")
    var columns: String?

    func validate() throws {
        guard ArgumentChecks.enabled else { return }
        if pipeline == nil && table == nil { throw ValidationError("give a pipeline file or --table") }
        if pipeline != nil && table != nil { throw ValidationError("give either a pipeline file or --table, not both") }
    }
}

/// Builds the client, store and sync for a pipeline file or flag-defined table.
/// `stateDirectoryOverride` replaces the pipeline's (or --state-dir's) state directory, e.g. with a scratch one
/// for a command that must not create a store where syncs keep theirs.
func makeSync(pipelinePath: String?, table: String?, key: String, columns: String?, outputDir: String?,
              connection: ConnectionOptions, state: StateOptions, durable: Bool = true,
              stateDirectoryOverride: String? = nil, access: PanelStore.Access = .writer,
              configure: (inout SyncOptions, StatementClient) -> Void) throws -> (CDFSync, Pipeline?) {
    var options: SyncOptions
    let settings: ConnectionSettings
    var spec: Pipeline?
    if let pipelinePath {
        let p = try PipelineLoader.load(path: pipelinePath)
        spec = p
        settings = try connectionSettings(for: p, fallback: connection)
        options = try SyncOptions(pipeline: p, outputDirectory: outputDir)
    } else {
        settings = try connection.settings()
        options = SyncOptions(
            table: try QualifiedName(parsing: table ?? ""), keyColumn: key,
            columns: columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            outputDirectory: outputDir ?? ".cdfsync/out")
    }
    let store = try state.openStore(at: stateDirectoryOverride ?? stateDirectory(spec, state), durable: durable, access: access)
    // Which saved connection the pipeline uses, for `connection list` and `connection remove` (not for a scratch
    // store, e.g. preview's).
    if let spec, stateDirectoryOverride == nil, access == .writer {
        try store.recordConnection(spec.connection.name, pipeline: spec.name)
    }
    let client = StatementClient(settings: settings)
    Interrupts.install()
    client.isCancelled = { Interrupts.requested }
    configure(&options, client)
    let sync = CDFSync(client: client, store: store, options: options)
    return (sync, spec)
}

/// `sync --durability`: when a run's applied changes are synced to disk.
enum Durability: String, ExpressibleByArgument, CaseIterable {
    /// Every checkpoint's commit is durable when it returns (LMDB's default).
    case commit
    /// Commits are not synced; the store is synced once the run has applied its last batch (before delivery)
    /// and again when the run is recorded.
    case run
}

enum DispositionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, inline
    case externalLinks = "external-links"

    var value: Statement.Disposition? {
        switch self {
        case .auto: nil
        case .inline: .inline
        case .externalLinks: .externalLinks
        }
    }
}
