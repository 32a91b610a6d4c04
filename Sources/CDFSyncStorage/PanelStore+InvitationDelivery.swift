import CDFSyncCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Delivery of a pipeline's invitation outbox to `invitations-<first>-<last>.ndjson.zst` segments and a
/// `manifest.json`, with the crash safety of the changes' delivery (docs/storage.md §5): the segment is written under
/// a temporary name and fsynced; ONE LMDB transaction consumes its queue entries, marks their ledger entries `sent`
/// (or `withdrawn`) and records the segment; then the file is renamed and the directory fsynced; the manifest last.
/// A kill at any point is repaired by the next delivery: a committed segment still under its temporary name is
/// renamed, an uncommitted attempt's files are removed and its entries (still `queued`) written again — never lost,
/// never twice.
extension PanelStore {
    /// One delivered invitation segment, as recorded and listed in the directory's `manifest.json`.
    public struct InvitationSegment: Sendable, Equatable, Codable {
        public var file: String
        /// The pipeline's invitation sequences the segment consumed (`firstSeq...lastSeq`); entries of that range not
        /// in the file were withdrawn (or held back) instead.
        public var firstSeq: UInt64
        public var lastSeq: UInt64
        /// Lines in the file.
        public var invitations: Int
        public var bytesUncompressed: Int
        public var bytesCompressed: Int

        enum CodingKeys: String, CodingKey {
            case file, firstSeq = "first_seq", lastSeq = "last_seq", invitations
            case bytesUncompressed = "bytes_uncompressed", bytesCompressed = "bytes_compressed"
        }
    }

    /// What one ``deliverInvitations(pipeline:settings:directory:fileMode:maxLinesPerSegment:idempotencyKey:)`` did.
    public struct InvitationDeliveryOutcome: Sendable, Equatable {
        /// Invitations written to segments (sent).
        public var sent = 0
        /// Queued invitations not sent because the participant withdrew or lost every contact first.
        public var withdrawn = 0
        /// Queued invitations turned back into held ones: the activation does not stand confirmed (stale,
        /// deactivated, or removed from the pipeline).
        public var heldBack = 0
        /// The new segment files, in order.
        public var files: [String] = []
        /// What was repaired of a delivery killed part-way.
        public var repairs: [String] = []
        public var standing: ActivationStanding = .unconfirmed
    }

    /// The file name of the invitation segment holding sequences `first...last`.
    public static func invitationSegmentFileName(first: UInt64, last: UInt64) -> String {
        "invitations-\(pad12(first))-\(pad12(last)).ndjson.zst"
    }

    static func invitationTemporaryFileName(first: UInt64) -> String { "invitations-\(pad12(first)).ndjson.zst.tmp" }

    /// The first sequence of an invitation segment's file name, or nil.
    static func parseInvitationSegmentFileName(_ name: String) -> (first: UInt64, last: UInt64)? {
        let prefix = "invitations-"
        let suffix = ".ndjson.zst"
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let parts = name.dropFirst(prefix.count).dropLast(suffix.count).split(separator: "-")
        guard parts.count == 2, let first = UInt64(parts[0]), let last = UInt64(parts[1]) else { return nil }
        return (first, last)
    }

    func invitationSegments(_ txn: some ReadableTransaction, pipeline: String) throws -> [InvitationSegment] {
        let prefix = ActivationKey.pipelinePrefix(pipeline)
        var out: [InvitationSegment] = []
        try txn.forEach(invitationSegments, from: prefix) { k, v in
            guard k.starts(with: prefix) else { return false }
            do {
                out.append(try JSONDecoder().decode(InvitationSegment.self, from: Data(v)))
            } catch {
                throw StorageError(code: .corrupted, message: "an invitation segment record of \(pipeline) does not decode",
                    underlying: error)
            }
            return true
        }
        return out
    }

    /// Every invitation segment delivered for `pipeline`, in order.
    public func invitationSegments(pipeline: String) throws -> [InvitationSegment] {
        try environment.read { try invitationSegments($0, pipeline: pipeline) }
    }

    /// Delivers `pipeline`'s invitation outbox into `directory` (see the type's comment), after repairing what a
    /// killed delivery left there.
    ///
    /// When the activation does not stand confirmed under `settings` (nil: the pipeline has no activation any more),
    /// nothing is sent: the queued entries go back to held. A queued entry whose participant is no longer opted in,
    /// or has neither an email nor a phone, is `withdrawn` instead of sent. Each line is
    /// `{"seq","pipeline","target":{"type","id"},"participant_id","scope","external_id","idempotency_key","record"}`,
    /// the record as the panel holds it when the line is written; `idempotencyKey(pipeline, participant, target)`
    /// gives its key.
    ///
    /// - Throws: ``StorageError``; what was committed before the error stays delivered, the rest stays queued.
    public func deliverInvitations(
        pipeline: String, settings: ActivationSettings?, directory: String, fileMode: mode_t = PrivateFiles.fileMode,
        maxLinesPerSegment: Int = 50_000, idempotencyKey: (String, UInt64, String) -> String
    ) throws -> InvitationDeliveryOutcome {
        precondition(maxLinesPerSegment > 0)
        return try deliveryLock.withLock { _ in
            var outcome = InvitationDeliveryOutcome()
            let dir = Self.absolute(directory)
            let (standing, pending, hasSegments) = try environment.read { txn in
                let last = try readCounter(txn, ActivationKey.queuedSeq(pipeline)) ?? 0
                let delivered = try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0
                return (try activationStanding(txn, pipeline: pipeline, settings: settings), last > delivered,
                    try !invitationSegments(txn, pipeline: pipeline).isEmpty)
            }
            outcome.standing = standing
            if pending && !standing.sends {
                outcome.heldBack = try writerLock.withLock { _ in
                    try environment.write { txn in try holdQueued(txn, pipeline: pipeline) }
                }
            }
            // Nothing ever delivered and nothing to send: the directory is not touched (not even created).
            guard hasSegments || (pending && standing.sends) else { return outcome }
            try PrivateFiles.makeDirectory(dir, mode: PrivateFiles.directoryMode(forFileMode: fileMode))
            try claimInvitationDirectory(dir, fileMode: fileMode)
            if try environment.read({ try $0.get(meta, key: ActivationKey.directory(pipeline)) }) != Array(dir.utf8) {
                try writerLock.withLock { _ in
                    try environment.write { try $0.put(meta, key: ActivationKey.directory(pipeline), value: Array(dir.utf8)) }
                }
            }
            outcome.repairs += try repairInvitations(pipeline: pipeline, directory: dir)
            if standing.sends {
                while try deliverInvitationSegment(pipeline: pipeline, directory: dir, fileMode: fileMode,
                    maxLines: maxLinesPerSegment, idempotencyKey: idempotencyKey, outcome: &outcome) {}
            }
            try step(.beforeManifest)
            if let was = try writeInvitationManifest(pipeline: pipeline, directory: dir, mode: fileMode),
                outcome.files.isEmpty
            {
                outcome.repairs.append("rewrote the \(was.rawValue) manifest.json of \(dir)")
            }
            return outcome
        }
    }

    /// The invitation directory must be this store's: its owner file names this store (written when missing).
    private func claimInvitationDirectory(_ dir: String, fileMode: mode_t) throws {
        let ownerPath = dir + "/" + Self.ownerFileName
        if let data = FileManager.default.contents(atPath: ownerPath) {
            let owner = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            guard let id = owner?["store_id"] as? String, id == storeID else {
                throw StorageError(code: .directoryTaken,
                    message: "invitation directory \(dir) belongs to another state store (\(ownerPath) names "
                        + "\(owner?["state_dir"] as? String ?? "another store")); delivering into it would overwrite or "
                        + "delete its invitation files. Give the activation its own directory (activation.directory)")
            }
            return
        }
        try claim(dir, mode: fileMode)
    }

    /// Finishes the rename of the pipeline's last committed segment and removes leftovers of an uncommitted attempt.
    private func repairInvitations(pipeline: String, directory dir: String) throws -> [String] {
        var repairs: [String] = []
        let (last, delivered) = try environment.read { txn in
            (try invitationSegments(txn, pipeline: pipeline).last,
             try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0)
        }
        if let last {
            let final = dir + "/" + last.file
            let temp = dir + "/" + Self.invitationTemporaryFileName(first: last.firstSeq)
            if access(final, F_OK) != 0, access(temp, F_OK) == 0 {
                try deliveryRename(temp, to: final)
                try fsyncDirectory(dir)
                repairs.append("renamed invitation segment \(last.file), committed by a delivery that stopped before "
                    + "renaming it")
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let stray = names.filter { name in
            if let range = Self.parseInvitationSegmentFileName(name) { return range.first > delivered }
            return name.hasPrefix("invitations-") && name.hasSuffix(".tmp") || name == "manifest.json.tmp"
        }.sorted()
        for name in stray {
            let path = dir + "/" + name
            if unlink(path) != 0 && errno != ENOENT { throw StorageError.system(errno, "removing stray", path: path) }
        }
        if !stray.isEmpty {
            try fsyncDirectory(dir)
            repairs.append("removed \(stray.count) leftover file(s) of an uncommitted invitation delivery from \(dir): "
                + stray.joined(separator: ", "))
        }
        return repairs
    }

    /// Delivers the next segment; false when nothing was pending.
    private func deliverInvitationSegment(
        pipeline: String, directory dir: String, fileMode: mode_t, maxLines: Int,
        idempotencyKey: (String, UInt64, String) -> String, outcome: inout InvitationDeliveryOutcome
    ) throws -> Bool {
        struct Decided {
            var key: [UInt8]
            var entry: Invitation
        }
        var lines: [UInt8] = []
        var sent: [Decided] = []
        var withdrawn: [Decided] = []
        var decompressor: ZstdDecompressor?
        // Read what is pending and build the lines (the records as the panel holds them now).
        let range = try environment.read { txn -> (first: UInt64, last: UInt64)? in
            let delivered = try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0
            let queued = try queuedEntries(txn, pipeline: pipeline, after: delivered, limit: maxLines)
            guard let lastSeq = queued.last?.0 else { return nil }
            var w = JSONWriter(reservingCapacity: 1024)
            var parsed: (key: String, target: ActivationTarget?) = ("", nil)
            for (seq, pid, target) in queued {
                let key = ActivationKey.ledger(pid, target)
                guard var entry = try key.withUnsafeBytes({ k in
                    try txn.withValue(invitationsDB, key: k) { v in try v.map { try Invitation.decode($0) } }
                }) else { continue }
                // Held back (deactivated) or decided again since: its queue entry is consumed without a line.
                guard entry.state == .queued, entry.seq == seq else { continue }
                let record = try withBE(pid) { k in
                    try txn.withValue(panel, key: k) { v in
                        try v.map { try decodePanelValue(pid: pid, value: $0, decompressor: &decompressor, txn).record }
                    }
                }
                let why: String? = if let record {
                    ActivationRule.contactIneligibility(of: record).map { reason in
                        reason == .notOptedIn ? "no longer opted in" : "no email or phone any more"
                    }
                } else {
                    "no longer in the panel"
                }
                if let why {
                    entry.state = .withdrawn
                    entry.reason = "withdrawn before the invitation was sent: \(why)"
                    withdrawn.append(Decided(key: key, entry: entry))
                    continue
                }
                if parsed.key != target { parsed = (target, ActivationTarget(key: target)) }
                let t = parsed.target
                w.reset()
                w.beginObject()
                w.key("seq"); w.uint(seq)
                w.key("pipeline"); w.string(pipeline)
                w.key("target")
                w.beginObject()
                w.key("type"); w.string(t?.kind.rawValue ?? target)
                w.key("id"); w.string(t?.id ?? target)
                w.endObject()
                w.key("participant_id"); w.uint(pid)
                w.key("scope"); w.string(entry.scope)
                w.key("external_id"); w.string(entry.externalID)
                w.key("idempotency_key"); w.string(idempotencyKey(pipeline, pid, target))
                w.key("record"); w.raw(record!)
                w.endObject()
                lines += w.bytes
                lines.append(0x0A)
                sent.append(Decided(key: key, entry: entry))
            }
            return (delivered + 1, lastSeq)
        }
        guard let range else { return false }
        let file = Self.invitationSegmentFileName(first: range.first, last: range.last)
        let tempPath = dir + "/" + Self.invitationTemporaryFileName(first: range.first)
        var compressedCount = 0
        if !sent.isEmpty {
            do {
                let compressed = try Zstd.compress(lines, level: 3)
                compressedCount = compressed.count
                let segmentFile = try SegmentFile(path: tempPath, mode: fileMode)
                try compressed.withUnsafeBytes { try segmentFile.write($0) }
                try segmentFile.finish()
                try step(.segmentWritten(tempPath))
            } catch {
                unlink(tempPath)
                throw error
            }
        }
        let now = Self.isoNow()
        let info = InvitationSegment(file: file, firstSeq: range.first, lastSeq: range.last, invitations: sent.count,
            bytesUncompressed: lines.count, bytesCompressed: compressedCount)
        // The commit point: the queue entries are consumed, the ledger says sent (or withdrawn), the segment is
        // recorded — atomically.
        do {
            try writerLock.withLock { _ in
                try environment.write { txn in
                    let delivered = try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0
                    guard delivered + 1 == range.first else {
                        throw StorageError(code: .corrupted,
                            message: "the invitation outbox of \(pipeline) in \(directory) moved during delivery "
                                + "(delivered \(delivered), expected \(range.first - 1))")
                    }
                    _ = try txn.deleteRange(invitationQueue, from: ActivationKey.sequenced(pipeline, range.first),
                        upTo: ActivationKey.sequenced(pipeline, range.last + 1))
                    try txn.put(meta, key: ActivationKey.deliveredSeq(pipeline), value: bytesBE(range.last))
                    for var d in sent {
                        d.entry.state = .sent
                        d.entry.file = file
                        d.entry.sentAt = now
                        try txn.put(invitationsDB, key: d.key, value: d.entry.json())
                    }
                    for d in withdrawn { try txn.put(invitationsDB, key: d.key, value: d.entry.json()) }
                    if !sent.isEmpty {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.sortedKeys]
                        try txn.put(invitationSegments, key: ActivationKey.sequenced(pipeline, range.first),
                            value: Array(try encoder.encode(info)))
                    }
                }
            }
        } catch {
            if !sent.isEmpty { unlink(tempPath) }
            throw error
        }
        outcome.withdrawn += withdrawn.count
        guard !sent.isEmpty else { return true }
        try step(.segmentCommitted(file))
        // Only now does the segment get its final name: a file with a final name is always committed.
        try deliveryRename(tempPath, to: dir + "/" + file)
        try fsyncDirectory(dir)
        try step(.segmentRenamed(file))
        outcome.sent += sent.count
        outcome.files.append(file)
        return true
    }

    /// The `manifest.json` of an invitation directory: `{"version":1,"pipeline","delivered_seq","segments":[…]}`.
    func invitationManifestBytes(pipeline: String) throws -> [UInt8] {
        let (segments, delivered) = try environment.read { txn in
            (try invitationSegments(txn, pipeline: pipeline), try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0)
        }
        var w = JSONWriter(reservingCapacity: 1024)
        w.beginObject()
        w.key("version"); w.int(1)
        w.key("pipeline"); w.string(pipeline)
        w.key("delivered_seq"); w.uint(delivered)
        w.key("segments")
        w.beginArray()
        for s in segments {
            w.beginObject()
            w.key("file"); w.string(s.file)
            w.key("first_seq"); w.uint(s.firstSeq)
            w.key("last_seq"); w.uint(s.lastSeq)
            w.key("invitations"); w.int(Int64(s.invitations))
            w.key("bytes_uncompressed"); w.int(Int64(s.bytesUncompressed))
            w.key("bytes_compressed"); w.int(Int64(s.bytesCompressed))
            w.endObject()
        }
        w.endArray()
        w.endObject()
        w.bytes.append(0x0A)
        return w.bytes
    }

    /// Rewrites the manifest when it is missing or differs; returns what it was then (nil: it was current).
    private func writeInvitationManifest(pipeline: String, directory dir: String, mode: mode_t) throws -> ManifestState? {
        let bytes = try invitationManifestBytes(pipeline: pipeline)
        let was = Self.manifestState(of: dir, expected: bytes)
        guard was != .current else { return nil }
        try writeFileAtomically(bytes, to: dir + "/manifest.json", directory: dir, mode: mode, rename: deliveryRename)
        return was
    }

    /// What the next invitation delivery of `pipeline` would repair in `directory` (read-only; for `status`).
    public func invitationRepairs(pipeline: String, directory: String) throws -> [String] {
        let dir = Self.absolute(directory)
        guard FileManager.default.fileExists(atPath: dir) else { return [] }
        var items: [String] = []
        let (last, delivered) = try environment.read { txn in
            (try invitationSegments(txn, pipeline: pipeline).last,
             try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0)
        }
        if let last, access(dir + "/" + last.file, F_OK) != 0,
            access(dir + "/" + Self.invitationTemporaryFileName(first: last.firstSeq), F_OK) == 0
        {
            items.append("invitation segment \(last.file) committed but not renamed")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let stray = names.filter { name in
            if let range = Self.parseInvitationSegmentFileName(name) { return range.first > delivered }
            return name.hasPrefix("invitations-") && name.hasSuffix(".tmp")
        }
        if !stray.isEmpty { items.append("\(stray.count) leftover file(s) to remove") }
        if last != nil {
            let state = Self.manifestState(of: dir, expected: try invitationManifestBytes(pipeline: pipeline))
            if state != .current, items.isEmpty || state == .missing { items.append("manifest \(state.rawValue)") }
        }
        return items
    }
}
