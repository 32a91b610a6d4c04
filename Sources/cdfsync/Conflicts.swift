import ArgumentParser
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    /// `cdfsync conflicts`: each identity conflict the store recorded — an email or phone a source key's row gives
    /// that already belongs to another participant — with the keys involved, the field, the values, when it was
    /// seen and what was kept. Reads the store only.
    struct Conflicts: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List identity conflicts: an email or phone that already belongs to another participant.",
            discussion: """
                PIPELINE is a pipeline file (its name and state_dir), a pipeline's name (in --state-dir), or a \
                state directory; without it, every conflict in --state-dir. Newest first. A conflict is never \
                merged: the value stays with the participant that had it (identity matching goes on using it), \
                and the row's participant keeps its own previous value for matching; both participants' records \
                show what their sources say.
                """)

        @Argument(help: "A pipeline file, a pipeline name, or a state directory.")
        var pipeline: String?

        @OptionGroup var state: StateOptions

        @Option(help: "List at most this many (newest first).")
        var limit: Int = 1000

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1; got \(limit).") }
        }

        /// One conflict as the command shows it.
        struct Entry {
            var seq: Int
            var pipeline: String
            var externalID: String
            var commitVersion: Int
            var field: String
            var value: String
            var previousValue: String?
            var seenAt: String?
            var participant: Int
            var participantKeys: [String]
            var owner: Int
            var ownerKeys: [String]
        }

        func run() throws {
            try reportingErrors {
                var (name, dir) = try pipelineArgument(pipeline, state)
                // Here the argument may also be a state directory.
                if let n = name, n == pipeline, StateOptions.hasStore(in: n) { (name, dir) = (nil, n) }
                let store = try state.openExistingStore(at: dir)
                var keysOf: [Int: [String]] = [:]
                func keys(_ pid: Int) throws -> [String] {
                    if let k = keysOf[pid] { return k }
                    let k = try store.sourceKeys(participantID: UInt64(pid)).map { "\($0.scope)/\($0.externalID)" }
                    keysOf[pid] = k
                    return k
                }
                var entries: [Entry] = []
                var more = 0
                for bytes in try store.conflicts(limit: Int.max) {
                    guard let o = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                        let scope = o["scope"] as? String
                    else { continue }
                    if let name, scope != name { continue }
                    guard entries.count < limit else {
                        more += 1
                        continue
                    }
                    let pid = o["participant_id"] as? Int ?? 0
                    let owner = o["other_participant_id"] as? Int ?? 0
                    entries.append(Entry(
                        seq: o["seq"] as? Int ?? 0, pipeline: scope, externalID: o["external_id"] as? String ?? "",
                        commitVersion: o["commit_version"] as? Int ?? 0, field: o["key"] as? String ?? "",
                        value: o["value"] as? String ?? "", previousValue: o["previous_value"] as? String,
                        seenAt: o["seen_at"] as? String, participant: pid, participantKeys: try keys(pid),
                        owner: owner, ownerKeys: try keys(owner)))
                }
                if json {
                    print(String(decoding: Self.json(entries, directory: dir, pipeline: name, more: more), as: UTF8.self))
                } else {
                    var text = Self.text(entries, directory: dir, pipeline: name, more: more)
                    // A name that is not one of the store's pipelines is most likely a typo: say which there are.
                    if entries.isEmpty, let name {
                        let known = try store.checkpoints().map(\.pipeline).filter { !$0.hasPrefix("webhook/") }
                        if !known.isEmpty && !known.contains(name) {
                            text += " (pipelines there: \(known.sorted().joined(separator: ", ")))"
                        }
                    }
                    print(text)
                }
            }
        }

        /// What was kept, in words.
        static func kept(_ e: Entry) -> String {
            "\(e.value) stays with participant \(e.owner); participant \(e.participant) keeps "
                + (e.previousValue.map { "\($0)" } ?? "no \(e.field)") + " for matching"
        }

        static func text(_ entries: [Entry], directory: String, pipeline: String?, more: Int) -> String {
            let scope = pipeline.map { " of pipeline \($0)" } ?? ""
            guard !entries.isEmpty else { return "no identity conflicts\(scope) in \(FilePaths.shown(directory))" }
            var lines = ["\(entries.count + more) identity conflict(s)\(scope) in \(FilePaths.shown(directory)), newest first"]
            for e in entries {
                lines.append("")
                lines.append("conflict \(e.seq)  \(e.field) \(e.value)  seen \(e.seenAt ?? "(not recorded)")  "
                    + "pipeline \(e.pipeline), commit version \(e.commitVersion)")
                lines.append("  row       key \(e.pipeline)/\(e.externalID) of participant \(e.participant) "
                    + "(keys \(e.participantKeys.joined(separator: ", ")))")
                lines.append("  owner     participant \(e.owner) (keys \(e.ownerKeys.joined(separator: ", "))) has \(e.value)")
                lines.append("  kept      " + kept(e))
            }
            if more > 0 { lines.append("\n\(more) older conflict(s) not shown (--limit)") }
            return lines.joined(separator: "\n")
        }

        static func json(_ entries: [Entry], directory: String, pipeline: String?, more: Int) -> [UInt8] {
            var w = JSONWriter()
            w.beginObject()
            w.key("format"); w.string("cdfsync-conflicts/1")
            w.key("state_dir"); w.string(directory)
            w.key("pipeline"); w.string(pipeline)
            w.key("not_shown"); w.int(Int64(more))
            w.key("conflicts")
            w.beginArray()
            for e in entries {
                w.beginObject()
                w.key("seq"); w.int(Int64(e.seq))
                w.key("pipeline"); w.string(e.pipeline)
                w.key("external_id"); w.string(e.externalID)
                w.key("commit_version"); w.int(Int64(e.commitVersion))
                w.key("field"); w.string(e.field)
                w.key("value"); w.string(e.value)
                w.key("seen_at"); w.string(e.seenAt)
                w.key("participant_id"); w.int(Int64(e.participant))
                w.key("participant_keys"); w.beginArray(); e.participantKeys.forEach { w.string($0) }; w.endArray()
                w.key("owner_participant_id"); w.int(Int64(e.owner))
                w.key("owner_keys"); w.beginArray(); e.ownerKeys.forEach { w.string($0) }; w.endArray()
                w.key("kept")
                w.beginObject()
                w.key("value_stays_with"); w.int(Int64(e.owner))
                w.key("participant_keeps"); w.string(e.previousValue)
                w.key("text"); w.string(kept(e))
                w.endObject()
                w.endObject()
            }
            w.endArray()
            w.endObject()
            return w.bytes
        }
    }
}
