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

            @Flag(help: "Print {\"state_dir\": …, \"runs\": [run record, …]} as one JSON object.")
            var json = false

            func run() throws {
                try reportingErrors {
                    let (name, dir) = try pipelineArgument(pipeline, state)
                    let store = try state.openExistingStore(at: dir)
                    let holder = WriterLock.holder(of: dir)
                    var shown = 0
                    var seen = Set<String>()
                    // --json: one object; each record is written as it is listed.
                    var document = JSONWriter()
                    if json {
                        document.beginObject()
                        document.key("state_dir"); document.string(dir)
                        document.key("runs")
                        document.beginArray()
                    }
                    for (id, stored) in try store.runs(limit: name == nil ? limit : 10_000) where shown < limit {
                        let record: RunRecord
                        do {
                            record = try Self.read(stored, id: id, holder: holder)
                        } catch {
                            // Damaged, or written by a newer build: listed as stored (its pipeline is unknown).
                            guard name == nil else { continue }
                            shown += 1
                            if json {
                                // Its bytes may not be JSON at all: the id and why, not the bytes.
                                document.beginObject()
                                document.key("run_id"); document.uint(id)
                                document.key("unreadable"); document.string(RunRecord.unreadable(error))
                                document.endObject()
                            } else {
                                print("run \(id)  record not readable (\(RunRecord.unreadable(error)))")
                            }
                            continue
                        }
                        seen.insert(record.pipeline)
                        if let name, record.pipeline != name { continue }
                        shown += 1
                        if json {
                            document.raw(try record.json())
                            continue
                        }
                        let c = record.counts
                        // A record is rewritten when its run ends: a run in progress, or one that never ended, has
                        // not recorded what it read.
                        let read = record.readDescription ?? [
                            .succeeded: "no new commits", .failed: "nothing read", .running: "in progress",
                            .interrupted: "reading not recorded",
                        ][record.status, default: ""]
                        print("run \(id)  \(record.startedAtText)  \(record.pipeline)  \(record.mode.rawValue)  "
                            + "\(read)  \(record.status.rawValue)  read \(c.read) ins \(c.inserted) upd \(c.updated) "
                            + "unch \(c.unchanged)")
                    }
                    if json {
                        document.endArray()
                        document.endObject()
                        JSONOutput.emit(document.bytes)
                    } else if shown == 0 {
                        // A name no run has is most likely a typo: say which pipelines did run.
                        let hint = name != nil && !seen.isEmpty
                            ? " (pipelines with runs there: \(seen.sorted().joined(separator: ", ")))" : ""
                        print("no runs" + (name.map { " of pipeline \($0)" } ?? "") + " recorded in "
                            + FilePaths.shown(dir) + hint)
                    }
                }
            }

            /// A stored record as it reads now (``RunRecord/current(holder:)``), with the id it is stored under (a
            /// record left `running` holds 0: its id was not known when it was first written).
            static func read(_ stored: [UInt8], id: UInt64, holder: WriterLock.Holder?) throws -> RunRecord {
                var record = try RunRecord(json: stored)
                record.runID = id
                return record.current(holder: holder)
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
                    let record: RunRecord
                    do {
                        record = try List.read(stored, id: id, holder: WriterLock.holder(of: state.stateDir))
                    } catch {
                        if json {
                            print(String(decoding: stored, as: UTF8.self))
                            return
                        }
                        throw SyncError("run \(id)'s record cannot be read (\(RunRecord.unreadable(error)))",
                            remedy: "Print it as stored with `cdfsync runs show \(id) --json`.")
                    }
                    if json {
                        print(String(decoding: try record.json(), as: UTF8.self))
                        return
                    }
                    print(Self.text(record))
                }
            }

            /// The record as `key  value` lines: the run's fields, its parts, its counts, then its lists.
            static func text(_ r: RunRecord) -> String {
                // Keys padded to the longest one printed, plus two spaces: a long key never runs into its value.
                func pad(_ key: String, _ width: Int) -> String {
                    key.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                }
                let fields: [(String, String?)] = [
                    ("run_id", "\(r.runID)"), ("pipeline", r.pipeline), ("source", r.table), ("mode", r.mode.rawValue),
                    ("status", r.status.rawValue), ("started_at", r.startedAtText),
                    ("seconds", String(format: "%.3f", r.seconds)), ("host", r.host), ("user", r.user),
                    ("pid", "\(r.processID)"), ("from_version", r.fromVersion.map { "\($0)" }),
                    ("to_version", r.toVersion.map { "\($0)" }), ("latest_version", r.latestVersion.map { "\($0)" }),
                    ("checkpoint_before", r.checkpointBefore.map { "\($0)" }),
                    ("checkpoint_version", r.checkpointVersion.map { "\($0)" }),
                    ("watermark_before", r.watermarkBefore), ("watermark", r.watermark), ("durability", r.durability),
                    ("bytes_received", "\(r.bytesReceived)"), ("peak_rss_bytes", "\(r.peakResidentBytes)"),
                    ("record_version", "\(r.recordVersion)"),
                    ("error", r.error),
                ]
                var lines: [String] = []
                let shown = fields.compactMap { k, v in v.map { (k, $0) } }
                let width = shown.map(\.0.count).max() ?? 0
                for (key, value) in shown { lines.append("\(pad(key, width))\(value)") }
                if !r.parts.isEmpty {
                    lines.append("parts")
                    for p in r.parts {
                        lines.append("  \(p.mode.rawValue)  \(p.description): \(p.statements) statement(s), "
                            + "\(p.rowsRead) row(s)")
                    }
                }
                lines.append("counts")
                let counts = r.counts.fields
                let countWidth = counts.map(\.key.count).max() ?? 0
                for (k, v) in counts { lines.append("  \(pad(k, countWidth))\(v)") }
                if let f = r.refresh {
                    lines.append("refresh")
                    lines.append("  keys          \(f.keys)")
                    lines.append("  absent        \(f.absent)")
                    lines.append("  newly_absent  \(f.newlyAbsent)")
                    if !f.absentSample.isEmpty { lines.append("  absent_sample " + f.absentSample.joined(separator: ", ")) }
                    if let list = f.absentList { lines.append("  absent_list   \(list)") }
                }
                lines += r.invitationFieldLines
                for (key, list) in [("statement_ids", r.statementIDs), ("output_files", r.outputFiles),
                                    ("schema_changes", r.schemaChanges), ("warnings", r.warnings),
                                    ("invalid_samples", r.invalidSamples)] where !list.isEmpty {
                    lines.append(key)
                    lines += list.map { "  \($0)" }
                }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Panel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect the participant panel.", subcommands: [Export.self])

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write the whole panel as NDJSON to stdout.")
            @OptionGroup var state: StateOptions
            @OptionGroup var display: ProgressOptions
            @OptionGroup(title: "Logging") var logging: LoggingOptions

            func run() throws {
                try reportingErrors {
                    let store = try state.openExistingStore()
                    let renderer = ProgressRenderer(label: "export", unit: "records", verb: "written", mode: display.mode(logging: logging))
                    renderer.phase(.exporting, detail: nil)
                    renderer.announced(rows: Int64(try store.statistics().participants))
                    try renderer.around { try write(store, progress: renderer) }
                }
            }

            /// Every record as one NDJSON line, in 1 MiB writes; the renderer is told every 1,000 records.
            func write(_ store: PanelStore, progress: ProgressRenderer) throws {
                let out = FileHandle.standardOutput
                var buffer: [UInt8] = []
                buffer.reserveCapacity(1 << 20)
                var pending = 0
                try store.forEachRecord(scope: nil) { r in
                    pending += 1
                    if pending == 1_000 {
                        progress.read(rows: pending)
                        pending = 0
                    }
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
                progress.read(rows: pending)
            }
        }
    }
}
