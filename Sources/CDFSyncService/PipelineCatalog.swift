import CDFSyncCore
import CDFSyncEngine
import Foundation
import Synchronization

/// The pipeline files of `--pipelines DIR`, read again whenever one changes: the files stay the source of truth,
/// and a hand edit is picked up at the next look (the scheduler looks every tick, the API at every call).
///
/// A file that does not load (bad YAML, an unknown field, a name another file already uses) is listed with its
/// error and never runs; the others are unaffected.
final class PipelineCatalog: Sendable {
    /// One pipeline file as last read.
    struct Entry: Sendable {
        /// The file's path.
        var path: String
        /// Its modification time and size when read (a change of either reads it again).
        var modified: Date
        var size: Int
        /// The loaded pipeline, nil when it did not load.
        var spec: Pipeline?
        /// Why it did not load.
        var error: String?

        /// The pipeline's name, or the file's when it did not load.
        var name: String { spec?.name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
    }

    let directory: String
    private let entries = Mutex<[String: Entry]>([:])

    init(directory: String) {
        self.directory = directory
    }

    /// Reads the directory again: new and changed files are loaded, removed ones dropped. Returns every entry, by
    /// path.
    @discardableResult
    func refresh() -> [Entry] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }
            .sorted()
        var seen: [String: (Date, Int)] = [:]
        for name in names {
            let path = directory + "/" + name
            guard let attributes = try? fm.attributesOfItem(atPath: path),
                (attributes[.type] as? FileAttributeType) == .typeRegular
            else { continue }
            seen[path] = ((attributes[.modificationDate] as? Date) ?? .distantPast,
                (attributes[.size] as? NSNumber)?.intValue ?? 0)
        }
        // Files are parsed outside the lock (a YAML file may be large); only what changed.
        let known = entries.withLock { $0 }
        var updated: [String: Entry] = [:]
        for (path, (modified, size)) in seen {
            if let old = known[path], old.modified == modified, old.size == size {
                updated[path] = old
                continue
            }
            do {
                updated[path] = Entry(path: path, modified: modified, size: size,
                    spec: try PipelineLoader.load(path: path), error: nil)
            } catch {
                updated[path] = Entry(path: path, modified: modified, size: size, spec: nil, error: "\(error)")
            }
        }
        // Two files naming the same pipeline would share a checkpoint: the first by path runs, the others are errors.
        var owners: [String: String] = [:]
        for path in updated.keys.sorted() {
            guard let name = updated[path]?.spec?.name else { continue }
            if let first = owners[name] {
                updated[path]?.error = "pipeline name '\(name)' is also the name of \(FilePaths.shown(first)) — "
                    + "Give each pipeline file its own name."
            } else {
                owners[name] = path
            }
        }
        entries.withLock { $0 = updated }
        return updated.values.sorted { $0.path < $1.path }
    }

    /// Every entry as last read (no new look at the directory).
    var current: [Entry] {
        entries.withLock { $0.values.sorted { $0.path < $1.path } }
    }

    /// The pipeline named `name` that loaded without error (after a fresh look at the directory).
    func pipeline(named name: String) -> Entry? {
        refresh().first { $0.error == nil && $0.spec?.name == name }
    }
}
