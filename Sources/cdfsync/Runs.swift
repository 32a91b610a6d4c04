import ArgumentParser
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Runs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The audit record of every run.", subcommands: [List.self, Show.self], defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List recorded runs, newest first.")

            @Argument(help: "Only runs of this pipeline (its name, or its YAML file).")
            var pipeline: String?

            @OptionGroup var state: StateOptions

            @Option(help: "How many runs to list.")
            var limit: Int = 20

            @Flag(help: "Print the run records as JSON lines.")
            var json = false

            func run() throws {
                try reportingErrors {
                    var name = pipeline
                    var dir = state.stateDir
                    if let p = pipeline, p.hasSuffix(".yaml") || p.hasSuffix(".yml") {
                        let spec = try PipelineLoader.load(path: p)
                        name = spec.name
                        dir = stateDirectory(spec, state)
                    }
                    let store = try state.openExistingStore(at: dir)
                    let holder = WriterLock.holder(of: dir)
                    var shown = 0
                    for (id, stored) in try store.runs(limit: name == nil ? limit : 10_000) where shown < limit {
                        let record = RunStatus.current(stored, holder: holder)
                        let obj = (try? JSONSerialization.jsonObject(with: Data(record))) as? [String: Any] ?? [:]
                        if let name, obj["pipeline"] as? String != name { continue }
                        shown += 1
                        if json {
                            print(String(decoding: record, as: UTF8.self))
                            continue
                        }
                        let counts = obj["counts"] as? [String: Any] ?? [:]
                        let from = (obj["from_version"] as? Int).map { "v\($0 + 1)" } ?? "start"
                        let range = (obj["to_version"] as? Int).map { "\(from)…v\($0)" }
                            ?? (obj["status"] as? String == RunStatus.succeeded ? "no new commits" : "from \(from)")
                        print("run \(id)  \(obj["started_at"] ?? "")  \(obj["pipeline"] ?? "")  \(obj["mode"] ?? "")  \(range)  \(obj["status"] ?? "")  read \(counts["read"] ?? 0) ins \(counts["inserted"] ?? 0) upd \(counts["updated"] ?? 0) unch \(counts["unchanged"] ?? 0)")
                    }
                }
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one run's record.")

            @Argument(help: "The run id (from `cdfsync runs`).")
            var id: UInt64

            @OptionGroup var state: StateOptions

            @Flag(help: "Print the record as JSON.")
            var json = false

            func run() throws {
                try reportingErrors {
                    let store = try state.openExistingStore()
                    guard let stored = try store.run(id: id) else {
                        throw SyncError("run \(id) is not recorded in \(state.stateDir)", remedy: "List runs with `cdfsync runs`.")
                    }
                    let record = RunStatus.current(stored, holder: WriterLock.holder(of: state.stateDir))
                    if json {
                        print(String(decoding: record, as: UTF8.self))
                        return
                    }
                    let obj = (try? JSONSerialization.jsonObject(with: Data(record))) as? [String: Any] ?? [:]
                    // Keys padded to the longest one printed, plus two spaces: a long key never runs into its value.
                    func pad(_ key: String, _ width: Int) -> String { key.padding(toLength: width + 2, withPad: " ", startingAt: 0) }
                    let fields = ["run_id", "pipeline", "source", "mode", "status", "started_at", "seconds", "host", "user", "pid",
                                  "from_version", "to_version", "latest_version", "checkpoint_version", "watermark",
                                  "durability", "peak_rss_bytes", "error"]
                        .filter { obj[$0] != nil && !(obj[$0] is NSNull) }
                    let width = fields.map(\.count).max() ?? 0
                    for key in fields { print("\(pad(key, width))\(obj[key]!)") }
                    if let c = obj["counts"] as? [String: Any] {
                        print("counts")
                        let width = c.keys.map(\.count).max() ?? 0
                        for (k, v) in c.sorted(by: { $0.key < $1.key }) { print("  \(pad(k, width))\(v)") }
                    }
                    for key in ["statement_ids", "output_files", "schema_changes", "warnings", "invalid_samples"] {
                        if let l = obj[key] as? [Any], !l.isEmpty {
                            print(key)
                            l.forEach { print("  \($0)") }
                        }
                    }
                }
            }
        }
    }

    struct Panel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect the participant panel.", subcommands: [Export.self])

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write the whole panel as NDJSON to stdout.")
            @OptionGroup var state: StateOptions

            func run() throws {
                try reportingErrors {
                    let store = try state.openExistingStore()
                    let out = FileHandle.standardOutput
                    var buffer: [UInt8] = []
                    buffer.reserveCapacity(1 << 20)
                    try store.forEachRecord(scope: nil) { r in
                        buffer.append(contentsOf: "{\"participant_id\":\(r.participantID),\"external_id\":".utf8)
                        JSONWriter.appendEscaped(r.externalID, to: &buffer)
                        buffer.append(contentsOf: ",\"scope\":".utf8)
                        JSONWriter.appendEscaped(r.scope, to: &buffer)
                        buffer.append(contentsOf: ",\"source_keys\":[".utf8)
                        for (i, k) in r.sourceKeys.enumerated() {
                            if i > 0 { buffer.append(UInt8(ascii: ",")) }
                            buffer.append(contentsOf: "{\"scope\":".utf8)
                            JSONWriter.appendEscaped(k.scope, to: &buffer)
                            buffer.append(contentsOf: ",\"external_id\":".utf8)
                            JSONWriter.appendEscaped(k.externalID, to: &buffer)
                            buffer.append(UInt8(ascii: "}"))
                        }
                        buffer.append(contentsOf: "],\"commit_version\":\(r.commitVersion),\"record\":".utf8)
                        buffer.append(contentsOf: r.record)
                        buffer.append(contentsOf: "}\n".utf8)
                        if buffer.count > 1 << 20 {
                            out.write(Data(buffer))
                            buffer.removeAll(keepingCapacity: true)
                        }
                    }
                    out.write(Data(buffer))
                }
            }
        }
    }
}
