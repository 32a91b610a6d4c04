import CDFSyncCore
import Foundation
import Synchronization

/// A stand-in for the downstream platform a pipeline's webhook sink POSTs to (not part of Databricks).
///
/// `POST /_hook/{name}` accepts a JSON body and answers 200 `{}`; a request whose `Idempotency-Key` was
/// already accepted is answered 200 again but not recorded twice (it is counted as a duplicate). Faults apply
/// to these requests like to workspace ones, so retries can be tested. `Simulator.webhookDeliveries(name:)`
/// (and `GET /_sim/hooks/{name}` on the admin interface) return what was accepted.
public struct WebhookDelivery: Sendable, Equatable {
    public var idempotencyKey: String?
    public var body: [UInt8]
}

final class WebhookLog: Sendable {
    private struct State {
        var deliveries: [String: [WebhookDelivery]] = [:]
        var keys: Set<String> = []
        var duplicates: [String: Int] = [:]
    }
    private let state = Mutex(State())

    func accept(name: String, key: String?, body: [UInt8]) {
        state.withLock { s in
            if let key, !s.keys.insert("\(name)\u{0}\(key)").inserted {
                s.duplicates[name, default: 0] += 1
                return
            }
            s.deliveries[name, default: []].append(WebhookDelivery(idempotencyKey: key, body: body))
        }
    }

    func deliveries(_ name: String) -> (accepted: [WebhookDelivery], duplicates: Int) {
        state.withLock { ($0.deliveries[name] ?? [], $0.duplicates[name] ?? 0) }
    }
}

extension Simulator {
    /// What the webhook `name` accepted, in order, and how many duplicate keys it turned away.
    public func webhookDeliveries(name: String) -> (accepted: [WebhookDelivery], duplicates: Int) {
        webhooks.deliveries(name)
    }

    func webhook(_ req: APIRequest) -> APIResponse {
        let name = String(req.path.dropFirst("/_hook/".count))
        guard req.method == "POST", !name.isEmpty, !name.contains("/") else {
            return APIResponse(status: 404, json: Array(#"{"error":"POST /_hook/<name>"}"#.utf8))
        }
        guard (try? JSONSerialization.jsonObject(with: Data(req.body))) != nil else {
            return APIResponse(status: 400, json: Array(#"{"error":"body is not JSON"}"#.utf8))
        }
        webhooks.accept(name: name, key: req.header("idempotency-key"), body: req.body)
        return APIResponse(status: 200, json: Array("{}".utf8))
    }

    func webhookAdmin(_ name: String) -> APIResponse {
        let (accepted, duplicates) = webhooks.deliveries(name)
        var w = JSONWriter()
        w.beginObject()
        w.key("name"); w.string(name)
        w.key("duplicates"); w.int(Int64(duplicates))
        w.key("deliveries")
        w.beginArray()
        for d in accepted {
            w.beginObject()
            w.key("idempotency_key"); w.string(d.idempotencyKey)
            w.key("body"); w.raw(d.body)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }
}
