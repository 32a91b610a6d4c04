import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Refresh: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read a pipeline's whole source, apply it, and mark the participants the source no longer has.",
            discussion: """
                Reads the source again from scratch — a table at its latest version (VERSION AS OF), the whole view \
                or custom SQL, a watermark source from its first row — and applies it with the usual per-key rules. \
                Source keys of the pipeline that the panel holds and the source no longer returns are counted and \
                listed, and their records get "in_source": false (delivered like any change; nobody is deleted); a \
                key seen again later gets "in_source": true back. The checkpoint moves to what was read, so change \
                data resumes after the snapshot's version. --dry-run changes nothing and reports what would change \
                (only the run's audit record is written).
                """)

        @Argument(help: "The pipeline YAML file.")
        var pipeline: String

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Option(help: "Directory for the zstd-compressed NDJSON change files.")
        var outputDir: String?

        @Option(help: "Rows applied per LMDB transaction.")
        var batchSize: Int = 10_000

        @Flag(help: "Read and evaluate everything; apply, mark, deliver and checkpoint nothing.")
        var dryRun = false

        @Flag(help: "Print the run's record and every absent key as one JSON object.")
        var json = false

        @Option(help: "Also write every absent key to this file, one JSON object a line.")
        var absentList: String?

        @Option(help: "Absent keys to list in the text output and the run's record.")
        var show: Int = 20

        @Flag(help: "Log what the run reads and applies (the same as --log-level info).")
        var verbose = false

        @OptionGroup(title: "Logging") var logging: LoggingOptions

        @OptionGroup var display: ProgressOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 row; got \(batchSize).") }
            guard (0...10_000).contains(show) else { throw ValidationError("--show must be 0…10000; got \(show).") }
        }

        func run() throws {
            try reportingErrors {
                let (sync, _) = try makeSync(pipelinePath: pipeline, table: nil, key: "", columns: nil,
                    outputDir: outputDir, connection: connection, state: state) { options, _ in
                    options.batchSize = batchSize
                }
                // Every absent key goes to a file as it is found (the list can be as long as the panel): the one asked
                // for, or a temporary one the JSON output is streamed from.
                let listPath = absentList
                    ?? (json ? NSTemporaryDirectory() + "cdfsync-absent-\(UUID().uuidString).ndjson" : nil)
                defer { if absentList == nil, let listPath { try? FileManager.default.removeItem(atPath: listPath) } }
                let list = try listPath.map { path -> FileHandle in
                    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                        let h = FileHandle(forWritingAtPath: path)
                    else {
                        throw SyncError("cannot write the absent list \(FilePaths.shown(path))",
                            remedy: "Check the path and its directory's permissions.")
                    }
                    return h
                }
                var line = JSONWriter()
                let renderer = ProgressRenderer(label: "refresh", mode: display.mode(logging: logging))
                sync.progress = renderer
                let summary = try renderer.around { try sync.refresh(
                    RefreshOptions(dryRun: dryRun, sampleSize: show, absentList: absentList)
                ) { absent in
                    guard let list else { return }
                    line.reset()
                    line.beginObject()
                    line.key("external_id"); line.string(absent.externalID)
                    line.key("participant_id"); line.uint(absent.participantID)
                    line.key("newly_marked"); line.bool(absent.newlyMarked)
                    line.endObject()
                    line.bytes.append(UInt8(ascii: "\n"))
                    try list.write(contentsOf: line.bytes)
                } }
                try list?.close()
                if json {
                    try Self.printJSON(record: summary.json(), list: listPath)
                } else {
                    print(summary.render())
                    if !summary.outputFiles.isEmpty { print("  output         \(sync.options.outputDirectory)") }
                }
            }
        }

        /// `{"run": <record>, "absent_keys": [<each line of the list>]}`, streamed from the list file.
        static func printJSON(record: [UInt8], list: String?) throws {
            let out = FileHandle.standardOutput
            out.write(Data(#"{"run":"#.utf8) + Data(record) + Data(#","absent_keys":["#.utf8))
            if let list, let h = FileHandle(forReadingAtPath: list) {
                defer { try? h.close() }
                var first = true
                var rest: [UInt8] = []
                while let data = try h.read(upToCount: 1 << 20), !data.isEmpty {
                    rest += data
                    var start = 0
                    while let nl = rest[start...].firstIndex(of: UInt8(ascii: "\n")) {
                        if nl > start {
                            out.write(Data((first ? [] : [UInt8(ascii: ",")]) + rest[start..<nl]))
                            first = false
                        }
                        start = nl + 1
                    }
                    rest.removeFirst(start)
                }
            }
            out.write(Data("]}\n".utf8))
        }
    }
}
