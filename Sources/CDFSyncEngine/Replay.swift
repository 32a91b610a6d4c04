import CDFSyncCore
import CDFSyncStorage
import Foundation

extension PanelStore {
    /// What `apply` would do with `changes`, without writing anything (replay `--dry-run`): the same
    /// transaction, aborted at its end. Each batch is evaluated against the panel as it is (a dry run's earlier
    /// batches were not written).
    func evaluate(_ changes: ChangeBatch, scope: String) throws -> ApplyOutcome {
        try apply(changes, scope: scope, pipeline: scope, checkpoint: nil, commit: false)
    }
}

/// The redelivery file of a replay: every replayed post-image as an NDJSON line, zstd-compressed, written to a
/// temporary name and renamed into place only when complete (so a crash leaves no partial file).
///
/// Thread-safety: used from the writer thread only, after creation; hence `@unchecked Sendable`.
final class ReplayFile: @unchecked Sendable {
    let name: String
    private let finalPath: String
    private let tempPath: String
    private let writer: ZstdFileWriter
    private(set) var lines = 0
    private var json = JSONWriter(reservingCapacity: 1024)

    init(directory: String, name: String, mode: mode_t = PrivateFiles.fileMode) throws {
        self.name = name
        guard let path = FilePaths.child(directory, name) else {
            throw SyncError("replay file name \(name.debugDescription) is not a file name",
                remedy: "This is a bug in cdfsync; report it.")
        }
        finalPath = path
        tempPath = finalPath + ".tmp"
        writer = try ZstdFileWriter(path: tempPath, level: 3, mode: mode)
    }

    func append(_ changes: PanelStore.ChangeBatch, scope: String) throws {
        for i in 0..<changes.count {
            let c = changes[i]
            json.reset()
            json.beginObject()
            json.key("op"); json.string("replay")
            json.key("scope"); json.string(scope)
            json.key("external_id"); json.string(c.externalID)
            json.key("commit_version"); json.int(c.commitVersion)
            json.key("record"); json.raw(c.record)
            json.endObject()
            json.bytes.append(UInt8(ascii: "\n"))
            try writer.write(json.bytes)
            lines += 1
        }
    }

    func finish() throws {
        try writer.finish()
        guard rename(tempPath, finalPath) == 0 else {
            throw SyncError("could not rename \(tempPath) to \(finalPath) (errno \(errno))",
                remedy: "Check free space and permissions of the output directory.")
        }
    }
}
