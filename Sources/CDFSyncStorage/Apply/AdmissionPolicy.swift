/// Who a row brings into the panel: the consent rule of docs/pipelines.md, decided inside the writer's transaction
/// from what the panel holds at that row (never from a read on another thread, where a batch that imports the
/// participant could still wait in the writer's queue).
///
/// A row whose key the panel holds is applied whatever its consent value (a withdrawal marks the participant not
/// contactable, it never deletes anyone); this policy decides only for keys the panel does not hold yet.
struct AdmissionPolicy {
    enum Admission: Equatable {
        /// The row is linked to this participant, found through its email or phone.
        case participant(UInt64)
        /// The row becomes a new participant.
        case newParticipant
        /// The row is not imported (consent-blocked).
        case notImported
    }

    /// A new key resolved (by email, then phone) to `owner`, or to nobody: a participant the panel holds is one, opted
    /// in or not; nobody becomes a new participant only when the row is opted in.
    @inline(__always)
    func admit(resolvedTo owner: UInt64?, optedIn: Bool) -> Admission {
        if let owner { return .participant(owner) }
        return optedIn ? .newParticipant : .notImported
    }
}
