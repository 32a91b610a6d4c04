import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension PanelStore {
    /// What the next delivery would repair in one output directory, after a delivery killed part-way: the same
    /// decisions ``deliver(to:segmentMaxBytes:)`` makes, taken without changing anything (`cdfsync status`).
    public struct DeliveryRepair: Sendable, Equatable {
        /// The directory (absolute, as recorded).
        public var directory: String
        /// The pipelines whose output directory it is (empty for a directory only the last segment names).
        public var pipelines: [String]
        /// A segment committed by a delivery that stopped before renaming it: it is still under its temporary
        /// name, and the next delivery gives it its final name.
        public var unrenamedSegment: String?
        /// Leftovers of a delivery that stopped before its commit (temporary files, segment files past the
        /// delivered cursor), which the next delivery deletes.
        public var leftovers: [String] = []
        /// How `manifest.json` compares with what the next delivery writes (it rewrites a missing or stale one).
        public var manifest: ManifestState = .current
        /// Why a delivery into the directory would be refused or fail (another store's directory, unreadable),
        /// nil when it would not. The other fields are not looked at then.
        public var problem: String?

        /// Whether the next delivery would change anything in the directory (or cannot deliver into it).
        public var isNeeded: Bool {
            unrenamedSegment != nil || !leftovers.isEmpty || manifest != .current || problem != nil
        }

        /// One phrase per repair, e.g. `segment changes-000000000001-000000000300.ndjson.zst committed but not
        /// renamed`, `manifest missing`.
        public var items: [String] {
            if let problem { return ["cannot deliver here: \(problem)"] }
            var items: [String] = []
            if let file = unrenamedSegment { items.append("segment \(file) committed but not renamed") }
            if !leftovers.isEmpty {
                items.append("\(leftovers.count) leftover file(s) of an uncommitted delivery to remove ("
                    + leftovers.joined(separator: ", ") + ")")
            }
            if manifest != .current { items.append("manifest \(manifest.rawValue)") }
            return items
        }
    }

    /// For every output directory the store knows (each pipeline's, and the last segment's), what the next
    /// delivery would repair. Reads only: no file or database is written, so it is safe beside a running sync
    /// (whose delivery may then be half-way: what it shows is a snapshot).
    public func deliveryRepairs() throws -> [DeliveryRepair] {
        let delivered = try deliveredSequence()
        var known = try pipelineDirectories()
        let last = try environment.read { txn -> (file: String, first: UInt64, directory: String?)? in
            guard let last = try txn.last(segments) else { return nil }
            let info = try last.value.withUnsafeBytes { try Self.decodeSegment($0) }
            return (info.file, info.firstSeq, try segmentDirectory(txn, first: info.firstSeq))
        }
        if let dir = last?.directory, !known.contains(where: { $0.directory == dir }) { known.append((dir, [])) }
        return try known.compactMap { entry -> DeliveryRepair? in
            let dir = entry.directory
            var repair = DeliveryRepair(directory: dir, pipelines: entry.pipelines)
            let owner: DirectoryOwner
            do {
                owner = try deliveryDirectoryOwner(dir, delivered: delivered)
            } catch {
                repair.problem = (error as? StorageError)?.message ?? "\(error)"
                return repair
            }
            let (expected, listed) = try manifestBytes(for: dir, deliveredSequence: delivered)
            let pending = (try? unrenamedLastSegment(fallback: dir)).flatMap { $0?.directory == dir ? $0 : nil }
            repair.unrenamedSegment = pending?.file
            // Where no pipeline delivers now, a delivery only finishes the rename.
            guard !entry.pipelines.isEmpty else { return pending == nil ? nil : repair }
            // A directory the store never delivered into is left untouched (delivery does not even claim it).
            guard owner == .thisStore || listed > 0 else { return repair }
            if access(dir, F_OK) == 0 {
                do {
                    // The pending segment's temporary file is renamed, not removed.
                    repair.leftovers = try strayFileNames(in: dir, deliveredSequence: delivered)
                        .filter { dir + "/" + $0 != pending?.temporaryPath }
                } catch {
                    repair.problem = (error as? StorageError)?.message ?? "\(error)"
                    return repair
                }
            }
            repair.manifest = Self.manifestState(of: dir, expected: expected)
            return repair
        }
    }
}
