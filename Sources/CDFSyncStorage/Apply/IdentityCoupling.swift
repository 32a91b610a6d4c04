/// Which keys of a batch must have their rows applied in batch order, interleaved with each other's.
///
/// Apply visits keys in index order, each key's rows in batch order. That gives the result of applying the rows
/// one at a time in batch order only for keys whose rows touch nothing another key's rows touch. Rows of two keys
/// can meet in three places:
/// - an email or phone value (one claims it, the other resolves through it, releases it or conflicts on it);
/// - a participant (two source keys linked to one participant both rewrite its record);
/// - a participant found through a value: a new key linking to a participant whose own key is in the batch, or
///   a key releasing the value another row resolves through.
///
/// So a key is *coupled* when one of its rows has a value another key's row also has, or when a participant it
/// touches — its own (stored), or the owner of one of its values in the index — is touched by another key. Values
/// the filter says are absent have no owner to look up; values it may hold are looked up (one index read each,
/// only for rows whose values the panel may already know). The test is conservative: coupling a key that did not
/// need it only costs the order, never the result.
enum IdentityCoupling {
    /// Per group of `plan`, whether it is coupled (an empty array when none is).
    ///
    /// - Parameters:
    ///   - state: each group's stored identity before the batch (nil: a key the panel does not hold).
    ///   - owner: the participant the email (or phone) index maps a value to, read in the batch's transaction.
    static func find(
        plan: BatchPlan, state: [IdentValue?], emails: [String?]?, phones: [String?]?, filter: MembershipFilter,
        owner: (MembershipFilter.Kind, [UInt8]) throws -> UInt64?
    ) throws -> [Bool] {
        let groups = plan.groupCount
        var coupled: [Bool] = []
        func couple(_ a: Int32, _ b: Int32) {
            if coupled.isEmpty { coupled = [Bool](repeating: false, count: groups) }
            coupled[Int(a)] = true
            coupled[Int(b)] = true
        }
        // Participants some row reaches through a value, and participants two of whose source keys are in play.
        var reached: [(pid: UInt64, group: Int32)] = []
        var participantsOfInterest = Set<UInt64>()
        for case let stored? in state where stored.linked { participantsOfInterest.insert(stored.pid) }
        if emails != nil || phones != nil {
            // Values by a 64-bit fingerprint (kind included); a collision only couples two keys needlessly.
            var valueGroup: [UInt64: Int32] = [:]
            for i in 0..<plan.groupOf.count {
                let g = plan.groupOf[i]
                for (kind, text) in [(MembershipFilter.Kind.email, emails?[i]), (.phone, phones?[i])] {
                    guard var text, !text.isEmpty else { continue }
                    let (fingerprint, maybeKnown) = text.withUTF8 { v -> (UInt64, Bool) in
                        let bytes = UnsafeRawBufferPointer(v)
                        return (MembershipFilter.hash(kind, bytes).0, filter.mayContain(filter.probe(kind, bytes)))
                    }
                    if let other = valueGroup[fingerprint] {
                        if other != g { couple(other, g) }
                    } else {
                        valueGroup[fingerprint] = g
                    }
                    if maybeKnown, let pid = try owner(kind, Array(text.utf8)) {
                        reached.append((pid, g))
                        participantsOfInterest.insert(pid)
                    }
                }
            }
        }
        guard !participantsOfInterest.isEmpty else { return coupled }
        var toucher: [UInt64: Int32] = [:]
        func touch(_ pid: UInt64, _ g: Int32) {
            if let other = toucher[pid] {
                if other != g { couple(other, g) }
            } else {
                toucher[pid] = g
            }
        }
        for (pid, g) in reached { touch(pid, g) }
        for g in 0..<groups {
            if let stored = state[g], participantsOfInterest.contains(stored.pid) { touch(stored.pid, Int32(g)) }
        }
        return coupled
    }
}
