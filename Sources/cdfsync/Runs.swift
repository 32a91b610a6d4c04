import ArgumentParser
import CDFSyncCore
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Runs: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List recorded sync runs, newest first.")

        @OptionGroup var state: StateOptions

        @Option(help: "How many runs to list.")
        var limit: Int = 20

        @Flag(help: "Print the run records as JSON lines.")
        var json = false

        func run() throws {
            try reportingErrors {
                let store = try PanelStore(directory: state.stateDir)
                for (id, record) in try store.runs(limit: limit) {
                    if json {
                        print(String(decoding: record, as: UTF8.self))
                        continue
                    }
                    let obj = (try? JSONSerialization.jsonObject(with: Data(record))) as? [String: Any] ?? [:]
                    let counts = obj["counts"] as? [String: Any] ?? [:]
                    let from = (obj["from_version"] as? Int).map { "v\($0 + 1)" } ?? "start"
                    let range = (obj["to_version"] as? Int).map { "\(from)…v\($0)" } ?? "no new commits"
                    print("run \(id)  \(obj["started_at"] ?? "")  \(obj["source"] ?? "")  \(range)  \(obj["status"] ?? "")  read \(counts["read"] ?? 0) ins \(counts["inserted"] ?? 0) upd \(counts["updated"] ?? 0) unch \(counts["unchanged"] ?? 0)")
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
                    let store = try PanelStore(directory: state.stateDir)
                    let out = FileHandle.standardOutput
                    var buffer: [UInt8] = []
                    buffer.reserveCapacity(1 << 20)
                    try store.forEachRecord(scope: nil) { r in
                        buffer.append(contentsOf: "{\"participant_id\":\(r.participantID),\"external_id\":".utf8)
                        JSONWriter.appendEscaped(r.externalID, to: &buffer)
                        buffer.append(contentsOf: ",\"commit_version\":\(r.commitVersion),\"record\":".utf8)
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
