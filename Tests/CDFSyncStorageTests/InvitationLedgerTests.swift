import CDFSyncCore
import CDFSyncTestSupport
import Foundation
import Testing

@testable import CDFSyncStorage

/// The invitation ledger (docs/activation.md): decisions in the writer's transaction, keyed by the resolved
/// participant; held until confirmed; delivered once, also across crashes at every step of delivery.
@Suite struct InvitationLedgerTests {
    typealias Change = PanelStore.Change

    static let study = PanelStore.ActivationSettings(
        rule: ActivationRule(Pipeline.Activation(inviteStudy: "S-1",
            eligibility: [.init(field: "country", op: .in, value: .list(["GB", "IE"]))]))!,
        settingsHash: "hash-1")

    static let pool = PanelStore.ActivationSettings(
        rule: ActivationRule(Pipeline.Activation(pool: "early"))!, settingsHash: "hash-pool")

    /// A participant row: opted in unless `optedIn` is false; an email unless `email` is nil.
    static func row(_ id: String, version: Int64, email: String? = "same", country: String = "GB", optedIn: Bool = true,
                    tag: String = "") -> Change {
        let mail = email.map { $0 == "same" ? "\(id.lowercased())@example.com" : $0 }
        let json = #"{"external_id":"\#(id)","email":\#(mail.map { "\"\($0)\"" } ?? "null"),"country":"\#(country)","#
            + #""tag":"\#(tag)","contactable":\#(optedIn)}"#
        return Change(externalID: id, commitVersion: version, record: Array(json.utf8), email: mail, optedIn: optedIn)
    }

    func key(_ pipeline: String, _ pid: UInt64, _ target: String) -> String {
        var h = 0
        for b in "\(pipeline)\n\(pid)\n\(target)".utf8 { h = (h &* 31) &+ Int(b) }
        return "k\(h)"
    }

    func deliver(_ store: PanelStore, _ out: String, settings: PanelStore.ActivationSettings? = study,
                 maxLines: Int = 50_000) throws -> PanelStore.InvitationDeliveryOutcome {
        try store.deliverInvitations(pipeline: "p", settings: settings, directory: out, maxLinesPerSegment: maxLines,
            idempotencyKey: key)
    }

    func lines(_ out: String) throws -> [[String: Any]] {
        let files = try FileManager.default.contentsOfDirectory(atPath: out)
            .filter { PanelStore.parseInvitationSegmentFileName($0) != nil }.sorted()
        return try deliveredLines(out, files).map(jsonObject)
    }

    func states(_ store: PanelStore) throws -> [String: PanelStore.Invitation.State] {
        Dictionary(uniqueKeysWithValues: try store.invitations(pipeline: "p").map { ($0.externalID, $0.state) })
    }

    @Test func unconfirmedInvitationsAreHeldThenReleasedAndSentOnce() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let o = try store.apply([Self.row("A", version: 1), Self.row("B", version: 1, country: "FR"),
                                     Self.row("C", version: 1, email: nil)],
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.study)
            #expect(o.inserted == 3)
            #expect(o.activation.held == 1 && o.activation.queued == 0)
            #expect(o.activation.notEligible == ["eligibility: country in [GB, IE]": 1, "no email or phone": 1])
            #expect(try states(store) == ["A": .held])
            // Nothing goes out unconfirmed.
            let none = try deliver(store, dir + "/out")
            #expect(none.sent == 0 && none.files.isEmpty && none.standing == .unconfirmed)
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"))

            let release = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "alice", host: "h")
            #expect(release.released == 1 && release.dropped.isEmpty)
            #expect(try store.activationConfirmation(pipeline: "p")?.by == "alice")
            #expect(try states(store) == ["A": .queued])
            let sent = try deliver(store, dir + "/out")
            #expect(sent.sent == 1 && sent.files == ["invitations-000000000001-000000000001.ndjson.zst"])
            let line = try #require(try lines(dir + "/out").first)
            #expect(line["external_id"] as? String == "A" && line["pipeline"] as? String == "p")
            #expect((line["target"] as? [String: Any])?["type"] as? String == "study")
            #expect((line["target"] as? [String: Any])?["id"] as? String == "S-1")
            #expect(line["idempotency_key"] as? String == key("p", 1, "study:S-1"))
            #expect((line["record"] as? [String: Any])?["email"] as? String == "a@example.com")
            #expect(try states(store) == ["A": .sent])
            let manifest = try jsonObject(String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir + "/out/manifest.json")), as: UTF8.self))
            #expect(manifest["delivered_seq"] as? Int == 1 && (manifest["segments"] as? [Any])?.count == 1)

            // Replays and refreshes find the first decision: a changed row of A is already invited.
            let again = try store.apply([Self.row("A", version: 2, tag: "changed"), Self.row("D", version: 2)],
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.study)
            #expect(again.activation.queued == 1 && again.activation.alreadyInvited == 0)  // A stayed eligible: no decision
            #expect(try deliver(store, dir + "/out").sent == 1)
            #expect(try lines(dir + "/out").map { $0["external_id"] as? String } == ["A", "D"])
        }
    }

    @Test func ledgerEntriesReadBackAsWritten() throws {
        var entry = PanelStore.Invitation(state: .sent, pipeline: "p.1", target: "study:S \"1\"", participantID: 1 << 40,
            scope: "p.1", externalID: "ö\\\n\u{1}x", commitVersion: -3, runID: nil, decidedAt: "2026-01-01T00:00:00Z")
        #expect(try PanelStore.Invitation.decode(entry.json()) == entry)
        entry.seq = 7
        entry.runID = 9
        entry.file = "invitations-000000000001-000000000007.ndjson.zst"
        entry.sentAt = "2026-01-02T00:00:00Z"
        entry.reason = "why"
        #expect(try PanelStore.Invitation.decode(entry.json()) == entry)
        #expect(throws: StorageError.self) { try PanelStore.Invitation.decode(Array(#"{"state":"sent"}"#.utf8)) }
        #expect(throws: StorageError.self) { try PanelStore.Invitation.decode(Array("{".utf8)) }
    }

    @Test func aPoolNeedsNoConfirmation() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let o = try store.apply([Self.row("A", version: 1), Self.row("B", version: 1, optedIn: false)],
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.pool)
            #expect(o.activation.queued == 1 && o.consentBlocked == 1)
            let d = try deliver(store, dir + "/out", settings: Self.pool)
            #expect(d.sent == 1 && d.standing == .notRequired)
            #expect((try lines(dir + "/out").first?["target"] as? [String: Any])?["type"] as? String == "pool")
            // Deactivated, even a pool holds.
            try store.deactivateActivation(pipeline: "p", target: "pool:early", by: "bob", host: "h")
            let held = try store.apply([Self.row("C", version: 2)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.pool)
            #expect(held.activation.held == 1)
        }
    }

    @Test func statisticsListEachWebhookCursorOfThePipelineOnly() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.apply([Self.row("A", version: 1), Self.row("B", version: 1)],
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.pool)
            #expect(try deliver(store, dir + "/out", settings: Self.pool).sent == 2)
            #expect(try store.invitationStatistics(pipeline: "p").webhooks.isEmpty)
            try store.setInvitationWebhookCursor(1, pipeline: "p", urlHash: 0xabc)
            try store.setInvitationWebhookCursor(2, pipeline: "p", urlHash: .max)
            // A pipeline whose name extends "p/" keeps its own cursors.
            try store.setInvitationWebhookCursor(7, pipeline: "p/x", urlHash: 0x1)
            let s = try store.invitationStatistics(pipeline: "p")
            #expect(s.deliveredSequence == 2)
            #expect(s.webhooks == [.init(urlHash: 0xabc, acknowledged: 1), .init(urlHash: .max, acknowledged: 2)])
            #expect(try store.invitationStatistics(pipeline: "p/x").webhooks == [.init(urlHash: 1, acknowledged: 7)])
        }
    }

    @Test func aLedgerPageCountsTheWholeListingAndKeepsOnlyThePage() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.apply(["A", "B", "C", "D", "E"].map { Self.row($0, version: 1) },
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.pool)
            _ = try store.apply([Self.row("F", version: 1), Self.row("G", version: 1)],
                scope: "q", pipeline: "q", checkpoint: nil, activation: Self.pool)
            #expect(try deliver(store, dir + "/out", settings: Self.pool).sent == 5)
            let all = try store.invitations(pipeline: "p")
            let page = try store.invitationPage(pipeline: "p", offset: 1, limit: 2)
            #expect(page.counts[.sent] == 5 && page.counts[.queued] == 0 && page.counts[.held] == 0)
            #expect(page.matching == 5 && page.entries == Array(all[1..<3]))
            #expect(try store.invitationPage(pipeline: "p", offset: 4, limit: .max).entries == [all[4]])
            #expect(try store.invitationPage(pipeline: "p", offset: 9, limit: 3).entries.isEmpty)
            let held = try store.invitationPage(pipeline: "p", state: .held, limit: 10)
            #expect(held.matching == 0 && held.entries.isEmpty && held.counts[.sent] == 5)
            let q = try store.invitationPage(pipeline: "q", state: .queued, limit: 10)
            #expect(q.matching == 2 && q.entries.map(\.externalID).sorted() == ["F", "G"])
            let everyone = try store.invitationPage(pipeline: nil, limit: 0)
            #expect(everyone.matching == 7 && everyone.entries.isEmpty)
            #expect(everyone.counts[.sent] == 5 && everyone.counts[.queued] == 2)
        }
    }

    @Test func linkedKeysShareOneInvitation() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
            // Two source keys with one email: the second links to the first's participant.
            let o = try store.apply([Self.row("A", version: 1, email: "same@example.com"),
                                     Self.row("B", version: 1, email: "same@example.com")],
                scope: "p", pipeline: "p", checkpoint: nil, activation: Self.study)
            #expect(o.inserted == 1 && o.linked == 1)
            #expect(o.activation.queued == 1 && o.activation.alreadyInvited == 1)
            // Another pipeline's key linked later: still the same (participant, target).
            let other = try store.apply([Self.row("Z", version: 1, email: "same@example.com")], scope: "q", pipeline: "q",
                checkpoint: nil, activation: Self.study)
            #expect(other.linked == 1 && other.activation.alreadyInvited == 1 && other.activation.queued == 0)
            #expect(try deliver(store, dir + "/out").sent == 1)
            #expect(try store.invitations(pipeline: nil).count == 1)
        }
    }

    @Test func anUpdateThatMakesSomeoneEligibleDecides() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
            let first = try store.apply([Self.row("A", version: 1, country: "FR")], scope: "p", pipeline: "p",
                checkpoint: nil, activation: Self.study)
            #expect(first.activation.notEligible.values.reduce(0, +) == 1)
            // Still not eligible: an update is no decision, not counted.
            let still = try store.apply([Self.row("A", version: 2, country: "DE")], scope: "p", pipeline: "p",
                checkpoint: nil, activation: Self.study)
            #expect(still.updated == 1 && still.activation.isEmpty)
            let now = try store.apply([Self.row("A", version: 3, country: "IE")], scope: "p", pipeline: "p",
                checkpoint: nil, activation: Self.study)
            #expect(now.activation.queued == 1)
            #expect(try states(store) == ["A": .queued])
        }
    }

    @Test func aWithdrawalBeforeDeliveryMeansNoInvitation() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
            _ = try store.apply([Self.row("A", version: 1), Self.row("B", version: 1)], scope: "p", pipeline: "p",
                checkpoint: nil, activation: Self.study)
            // A withdraws before the run's delivery.
            _ = try store.apply([Self.row("A", version: 2, optedIn: false)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.study)
            let d = try deliver(store, dir + "/out")
            #expect(d.sent == 1 && d.withdrawn == 1)
            #expect(try states(store) == ["A": .withdrawn, "B": .sent])
            #expect(try lines(dir + "/out").map { $0["external_id"] as? String } == ["B"])
            // Opted in again: newly eligible, decided anew, sent once.
            let back = try store.apply([Self.row("A", version: 3)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.study)
            #expect(back.activation.queued == 1)
            #expect(try deliver(store, dir + "/out").sent == 1)
            #expect(try lines(dir + "/out").map { $0["external_id"] as? String } == ["B", "A"])
        }
    }

    @Test func staleOrDeactivatedActivationsHoldWhatIsQueued() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
            _ = try store.apply([Self.row("A", version: 1)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.study)
            // The settings changed (new hash) before delivery: held back, not sent.
            var changed = Self.study
            changed.settingsHash = "hash-2"
            let stale = try deliver(store, dir + "/out", settings: changed)
            #expect(stale.sent == 0 && stale.heldBack == 1)
            if case .stale(let c) = stale.standing { #expect(c.settingsHash == "hash-1") } else { Issue.record("\(stale.standing)") }
            #expect(try states(store) == ["A": .held])
            let o = try store.apply([Self.row("B", version: 2)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: changed)
            #expect(o.activation.held == 1)
            // Confirmed again: both go out.
            let release = try store.confirmActivation(pipeline: "p", settings: changed, by: "b", host: "h")
            #expect(release.released == 2)
            #expect(try deliver(store, dir + "/out", settings: changed).sent == 2)
            // Deactivated: queued ones go back to held.
            _ = try store.apply([Self.row("C", version: 3)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: changed)
            #expect(try store.deactivateActivation(pipeline: "p", target: "study:S-1", by: "c", host: "h") == 1)
            #expect(try deliver(store, dir + "/out", settings: changed).sent == 0)
            #expect(try states(store)["C"] == .held)
            // Held ones no longer eligible when confirmed are dropped, not sent.
            _ = try store.apply([Self.row("C", version: 4, country: "FR")], scope: "p", pipeline: "p", checkpoint: nil,
                activation: changed)
            let last = try store.confirmActivation(pipeline: "p", settings: changed, by: "d", host: "h")
            #expect(last.released == 0 && last.dropped == ["eligibility: country in [GB, IE]": 1])
            #expect(try states(store)["C"] == .dropped)
        }
    }

    @Test func theResultDoesNotDependOnHowRowsWereBatched() throws {
        try withTemporaryDirectory { dir in
            // Keys out of order, links by email, a withdrawal and a re-consent inside the run. (Participant ids depend
            // on the batches — new keys of a batch get theirs in key order — so entries are compared by source key.)
            var rows: [Change] = []
            for i in 0..<60 {
                let id = String(format: "K%02d", (i * 37) % 60)
                rows.append(Self.row(id, version: 1, email: "m\(((i * 37) % 60) % 45)@x.io",
                    country: i % 7 == 0 ? "FR" : "GB"))
            }
            rows.append(Self.row("K05", version: 2, email: "m5@x.io", optedIn: false))
            rows.append(Self.row("K07", version: 2, email: "m7@x.io", country: "IE"))
            rows.append(Self.row("K05", version: 3, email: "m5@x.io"))
            var reference: [String]?
            for batchSize in [1, 3, 7, 64] {
                let store = try PanelStore(directory: dir + "/db-\(batchSize)")
                _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
                var total = PanelStore.ActivationOutcome()
                for start in stride(from: 0, to: rows.count, by: batchSize) {
                    total += try store.apply(Array(rows[start..<min(rows.count, start + batchSize)]), scope: "p",
                        pipeline: "p", checkpoint: nil, activation: Self.study).activation
                }
                _ = try deliver(store, dir + "/out-\(batchSize)")
                let ledger = try store.invitations(pipeline: "p").map {
                    "\($0.externalID) \($0.target) \($0.state.rawValue)"
                }.sorted()
                let sent = try lines(dir + "/out-\(batchSize)").map { $0["external_id"] as? String ?? "" }.sorted()
                #expect(Set(sent).count == sent.count)
                let result = ledger + sent + ["\(total.queued) \(total.alreadyInvited) \(total.notEligible)"]
                if let reference { #expect(result == reference, "batch size \(batchSize)") } else { reference = result }
            }
        }
    }

    /// Crashes delivery at every step (a thrown error stops it there, as a kill would), reruns it, and checks each
    /// invitation is in the files exactly once and the ledger says sent.
    @Test func crashAtAnyDeliveryStepThenRerunSendsEachOnce() throws {
        try withTemporaryDirectory { dir in
            func prepared(_ name: String) throws -> PanelStore {
                let store = try PanelStore(directory: dir + "/" + name)
                _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
                for b in 0..<4 {
                    _ = try store.apply((0..<5).map { Self.row("K\(b)-\($0)", version: Int64(b)) }, scope: "p",
                        pipeline: "p", checkpoint: nil, activation: Self.study)
                }
                return store
            }
            let reference = try prepared("ref")
            var steps: [PanelStore.DeliveryStep] = []
            reference.deliveryHook = { steps.append($0) }
            _ = try deliver(reference, dir + "/ref-out", maxLines: 6)
            let expected = try directoryContents(dir + "/ref-out")
            #expect(steps.count > 8)
            for crashAt in steps.indices {
                let store = try prepared("db-\(crashAt)")
                let out = dir + "/out-\(crashAt)"
                var seen = 0
                store.deliveryHook = { _ in
                    if seen == crashAt { throw InjectedCrash() }
                    seen += 1
                }
                #expect(throws: InjectedCrash.self) { try deliver(store, out, maxLines: 6) }
                store.deliveryHook = nil
                _ = try deliver(store, out, maxLines: 6)
                let ids = try lines(out).map { $0["external_id"] as? String ?? "" }
                #expect(ids.count == 20 && Set(ids).count == 20, "crash at \(steps[crashAt])")
                #expect(try store.invitations(pipeline: "p").allSatisfy { $0.state == .sent })
                // Sent-at times differ; the lines, segments and manifest do not.
                #expect(try directoryContents(out) == expected, "crash at \(steps[crashAt])")
            }
        }
    }

    @Test func heldForAnotherTargetIsDroppedWhenTheNewTargetIsConfirmed() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.apply([Self.row("A", version: 1)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.study)
            let other = PanelStore.ActivationSettings(
                rule: ActivationRule(Pipeline.Activation(inviteStudy: "S-2"))!, settingsHash: "hash-s2")
            let release = try store.confirmActivation(pipeline: "p", settings: other, by: "a", host: "h")
            #expect(release.released == 0 && release.dropped == ["the activation now targets study:S-2": 1])
            let entry = try #require(try store.invitations(pipeline: "p").first)
            #expect(entry.state == .dropped && entry.target == "study:S-1")
            // Not consumed: a later decision for the old target would queue it anew; the new target decides on its own.
            let next = try store.apply([Self.row("A", version: 2, tag: "x")], scope: "p", pipeline: "p", checkpoint: nil,
                activation: other)
            #expect(next.activation.isEmpty)  // A stayed eligible: no decision
        }
    }

    @Test func aDeliveryKilledAfterItsCommitIsReportedThenRepaired() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.confirmActivation(pipeline: "p", settings: Self.study, by: "a", host: "h")
            _ = try store.apply([Self.row("A", version: 1)], scope: "p", pipeline: "p", checkpoint: nil,
                activation: Self.study)
            store.deliveryHook = { if case .segmentCommitted = $0 { throw InjectedCrash() } }
            #expect(throws: InjectedCrash.self) { try deliver(store, dir + "/out") }
            store.deliveryHook = nil
            #expect(try store.invitationDirectory(pipeline: "p") == PanelStore.absolute(dir + "/out"))
            let repairs = try store.invitationRepairs(pipeline: "p", directory: dir + "/out")
            #expect(repairs.first == "invitation segment invitations-000000000001-000000000001.ndjson.zst committed but not renamed")
            let again = try deliver(store, dir + "/out")
            #expect(again.sent == 0 && again.repairs.first?.hasPrefix("renamed invitation segment") == true)
            #expect(try store.invitationRepairs(pipeline: "p", directory: dir + "/out").isEmpty)
            #expect(try lines(dir + "/out").count == 1)
        }
    }

    @Test func anotherStoresInvitationDirectoryIsRefused() throws {
        try withTemporaryDirectory { dir in
            for name in ["one", "two"] {
                let store = try PanelStore(directory: dir + "/" + name)
                _ = try store.apply([Self.row("A", version: 1)], scope: "p", pipeline: "p", checkpoint: nil,
                    activation: Self.pool)
                if name == "one" {
                    _ = try deliver(store, dir + "/out", settings: Self.pool)
                } else {
                    #expect(throws: StorageError.self) { try deliver(store, dir + "/out", settings: Self.pool) }
                }
            }
        }
    }
}
