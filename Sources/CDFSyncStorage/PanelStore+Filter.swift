import CDFSyncCore
import Foundation
import Synchronization

extension PanelStore {
    /// Rebuilds the filter with room for the current keys plus `minimumCapacity` (or twice the old capacity).
    func rebuildFilter(minimumCapacity: Int) throws {
        let (identCount, emailCount, phoneCount) = try environment.read { txn in
            (try txn.count(ident), try txn.count(emailIndex), try txn.count(phoneIndex))
        }
        let keys = identCount + emailCount + phoneCount
        let fresh = MembershipFilter(capacity: max(1 << 20, 2 * keys, minimumCapacity))
        let snapshot = try environment.read { txn in
            for (db, kind) in [(ident, MembershipFilter.Kind.ident), (emailIndex, .email), (phoneIndex, .phone)] {
                // The scan reads every index page; keep them from piling up as resident memory.
                var mapped = environment.mappedPageBudget(every: MappedPageBudget.scanKeys)
                try txn.forEach(db) { k, _ in
                    fresh.insert(kind, k)
                    mapped.tick()
                    return true
                }
            }
            return txn.snapshotID
        }
        environment.releaseMappedPages()
        filter = fresh
        // From here on the filter follows this process's commits; saveFilter() needs that chain unbroken.
        environment.trackOwnCommits(from: snapshot)
    }

    /// The file ``saveFilter()`` writes in the state directory.
    var savedFilterPath: String { directory + "/membership.filter" }

    /// Saves the membership filter next to the store, so that the next open skips the index scan (at 10 M rows
    /// that scan is ~2 s of an incremental sync). Saved only when every commit since the filter was built or
    /// loaded came from this store object — otherwise another writer may have added keys it does not hold —
    /// and tagged with the store's last transaction id: any later commit, by anyone, makes the next open
    /// ignore the file and scan. Best effort: returns whether it was saved.
    @discardableResult
    public func saveFilter() -> Bool {
        writerLock.withLock { _ in
            guard let txnID = environment.unbrokenOwnCommits else { return false }
            let temp = savedFilterPath + ".tmp"
            guard filter.write(toFile: temp, transactionID: txnID), rename(temp, savedFilterPath) == 0 else {
                unlink(temp)
                return false
            }
            return true
        }
    }

    /// Replaces the filter with the saved one if it describes the store's last committed transaction and its
    /// checksum holds (a damaged, stale or foreign file is ignored: the caller scans the indexes instead).
    func loadSavedFilter() -> Bool {
        let last = environment.lastCommittedTransactionID
        guard let saved = MembershipFilter.read(fromFile: savedFilterPath, transactionID: last) else { return false }
        filter = saved
        environment.trackOwnCommits(from: last)
        return true
    }

    /// Sizes the membership filter for a first load of about `keys` identity, email and phone keys, so that it is
    /// not rebuilt as the load grows: each rebuild scans every stored key on the writer's thread (a 10 M-row first
    /// load rebuilt it at ~1 M and ~4 M keys). Does nothing once the store holds keys (then the result's size says
    /// nothing about how many keys are new) or when the filter already has room.
    public func reserveFilterCapacity(forKeys keys: Int) throws {
        try writerLock.withLock { _ in
            guard filter.count == 0, keys > filter.capacity, environment.unbrokenOwnCommits != nil else { return }
            try rebuildFilter(minimumCapacity: keys + keys / 4)
        }
    }

    /// Grows the filter before a batch that could push it past its capacity (caller holds `writerLock`).
    func ensureFilterCapacity(adding upperBound: Int) throws {
        // Someone else committed since the filter was built or loaded: it may lack their keys.
        if environment.unbrokenOwnCommits == nil {
            try rebuildFilter(minimumCapacity: 2 * (filter.count + upperBound))
            return
        }
        if filter.count + upperBound > filter.capacity {
            try rebuildFilter(minimumCapacity: 4 * (filter.count + upperBound))
        }
    }
}
