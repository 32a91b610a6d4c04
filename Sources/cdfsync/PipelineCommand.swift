import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct PipelineCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pipeline", abstract: "Work with pipeline files.",
            subcommands: [Init.self, Validate.self, Preview.self, TestSQL.self, Activate.self, Deactivate.self])

        struct Validate: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a pipeline file, and (unless --offline) its source's live schema, field by field.")

            @Argument(help: "The pipeline YAML file.")
            var file: String

            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var state: StateOptions

            @Flag(help: "Only check the file itself; do not contact the warehouse.")
            var offline = false

            @Flag(help: "Print the result (pipeline, warnings, findings, valid) as one JSON object.")
            var json = false

            @OptionGroup(title: "Logging") var logging: LoggingOptions

            func run() throws {
                try reportingErrors {
                    let p = try PipelineLoader.load(path: file)
                    let options = try SyncOptions(pipeline: p)
                    let warnings = directoryWarnings(stateDirectory: stateDirectory(p, state),
                        deliveryDirectories: [(options.outputDirectory, options.fileMode)])
                    if !json {
                        print("✓ \(file): pipeline '\(p.name)', \(p.kind.rawValue) from \(p.source), mode \(p.mode.rawValue)")
                        for w in warnings { print("! warning: \(w)") }
                    }
                    if offline {
                        if json { JSONOutput.emit(Self.json(file: file, p, warnings: warnings, findings: nil)) }
                        return
                    }
                    // Validation reads only the warehouse: where no sync has created the state store yet, a scratch
                    // one (removed afterwards) stands in, so that validating leaves no store behind. It only reads
                    // the store, so it takes no writer lock and runs beside a sync.
                    let scratch = StateOptions.hasStore(in: stateDirectory(p, state))
                        ? nil : NSTemporaryDirectory() + "cdfsync-validate-\(UUID().uuidString)"
                    defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
                    let (sync, _) = try makeSync(pipelinePath: file, table: nil, key: "", columns: nil, outputDir: nil,
                        connection: connection, state: state, stateDirectoryOverride: scratch,
                        access: .reader) { _, _ in }
                    let findings = sync.validateLive()
                    let bad = findings.filter { !$0.ok }.count
                    if json {
                        JSONOutput.emit(Self.json(file: file, p, warnings: warnings, findings: findings))
                        if bad > 0 { throw ExitStatus.failure }
                        return
                    }
                    for f in findings { print("\(f.ok ? "✓" : "✗") \(f.field): \(f.message)") }
                    if bad > 0 {
                        print("\(bad) problem(s)")
                        throw ExitCode(1)
                    }
                    print("pipeline is valid")
                }
            }

            /// `pipeline validate --json`: the file and pipeline, the directory warnings, each live finding (`field`,
            /// `ok`, `message`; null with --offline), and `valid`.
            static func json(file: String, _ p: Pipeline, warnings: [String], findings: [ValidationFinding]?) -> [UInt8] {
                var w = JSONWriter()
                w.beginObject()
                w.key("file"); w.string(file)
                w.key("pipeline"); w.string(p.name)
                w.key("kind"); w.string(p.kind.rawValue)
                w.key("source"); w.string(p.source)
                w.key("mode"); w.string(p.mode.rawValue)
                w.key("warnings"); w.beginArray(); warnings.forEach { w.string($0) }; w.endArray()
                w.key("findings")
                if let findings {
                    w.beginArray()
                    for f in findings {
                        w.beginObject()
                        w.key("field"); w.string(f.field)
                        w.key("ok"); w.bool(f.ok)
                        w.key("message"); w.string(f.message)
                        w.endObject()
                    }
                    w.endArray()
                } else {
                    w.null()
                }
                w.key("valid"); w.bool(findings?.allSatisfy(\.ok) ?? true)
                w.endObject()
                return w.bytes
            }
        }

        struct Preview: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show the query a pipeline builds and its first rows as the sync would map them (writes nothing).",
                discussion: """
                    Runs the pipeline's own query (its mapped columns and filters, values bound as parameters) on the \
                    source's current data with a LIMIT, and prints each row as the participant or event record the \
                    panel would hold — or why it would be skipped (invalid, not opted in). No state is opened.
                    """)

            @Argument(help: "The pipeline YAML file.")
            var file: String

            @OptionGroup var connection: ConnectionOptions

            @Option(help: "Rows to read (1-1000).")
            var limit: Int = 10

            @Flag(help: "Print the query and the mapped rows as one JSON object.")
            var json = false

            @OptionGroup(title: "Logging") var logging: LoggingOptions

            func validate() throws {
                guard ArgumentChecks.enabled else { return }
                guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1…1000; got \(limit).") }
            }

            func run() throws {
                try reportingErrors {
                    let p = try PipelineLoader.load(path: file)
                    let client = StatementClient(settings: try connectionSettings(for: p, fallback: connection))
                    Interrupts.install()
                    client.isCancelled = { Interrupts.requested }
                    let preview = try PipelinePreview.run(client: client, pipeline: p, limit: limit)
                    if json {
                        print(String(decoding: Self.json(preview), as: UTF8.self))
                        return
                    }
                    print("query      \(preview.sql)")
                    for param in preview.parameters { print("  :\(param.name) = \(param.value.map { "'\($0)'" } ?? "NULL")") }
                    print("statement  \(preview.statementID), \(preview.rows.count) row(s)")
                    for (i, row) in preview.rows.enumerated() {
                        let record = row.record.map { String(decoding: $0, as: UTF8.self) } ?? ""
                        switch row.outcome {
                        case .participant(let id): print("\(i + 1). participant \(id)  \(record)")
                        case .event(let id): print("\(i + 1). event \(id)  \(record)")
                        case .notOptedIn(let id):
                            print("\(i + 1). not opted in: \(id) would not be imported (a participant already held is marked not contactable)  \(record)")
                        case .invalid(let why): print("\(i + 1). invalid, would be skipped: \(why)")
                        }
                    }
                }
            }

            static func json(_ p: PipelinePreview) -> [UInt8] {
                var w = JSONWriter()
                w.beginObject()
                w.key("sql"); w.string(p.sql)
                w.key("parameters")
                w.beginObject()
                for param in p.parameters { w.key(param.name); w.string(param.value) }
                w.endObject()
                w.key("statement_id"); w.string(p.statementID)
                w.key("columns")
                w.beginArray()
                for c in p.columns { w.string(c) }
                w.endArray()
                w.key("rows")
                w.beginArray()
                for row in p.rows {
                    w.beginObject()
                    switch row.outcome {
                    case .participant(let id): w.key("outcome"); w.string("participant"); w.key("external_id"); w.string(id)
                    case .notOptedIn(let id): w.key("outcome"); w.string("not_opted_in"); w.key("external_id"); w.string(id)
                    case .event(let id): w.key("outcome"); w.string("event"); w.key("event_id"); w.string(id)
                    case .invalid(let why): w.key("outcome"); w.string("invalid"); w.key("reason"); w.string(why)
                    }
                    w.key("record")
                    if let r = row.record { w.raw(r) } else { w.null() }
                    w.endObject()
                }
                w.endArray()
                w.endObject()
                return w.bytes
            }
        }
    }
}
