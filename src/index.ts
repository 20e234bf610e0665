/**
 * @glam/messaging: typed events over NATS JetStream for Effect services.
 *
 * @since 0.1.0
 */

export * as AsyncApi from "./AsyncApi.js"
export * as Broker from "./Broker.js"
export * as Consumer from "./Consumer.js"
export * as DeadLetter from "./DeadLetter.js"
export * as Endpoints from "./Endpoints.js"
export * as Envelope from "./Envelope.js"
export * as Event from "./Event.js"
export * as Logging from "./Logging.js"
export * as MemoryBroker from "./MemoryBroker.js"
export * as MessageContext from "./MessageContext.js"
export * as Messaging from "./Messaging.js"
export * as Metrics from "./Metrics.js"
export * as NatsBroker from "./NatsBroker.js"
export * as NatsClient from "./NatsClient.js"
export * as NatsError from "./NatsError.js"
export * as Otlp from "./Otlp.js"
export * as Policy from "./Policy.js"
export * as Publisher from "./Publisher.js"
export * as ServiceIdentity from "./ServiceIdentity.js"
export * as Subscriber from "./Subscriber.js"
export * as SubscriberStatus from "./SubscriberStatus.js"
export * as Topology from "./Topology.js"
export * as TopologyError from "./TopologyError.js"
