export * from './ack';
export * from './header';
export * from './orders-in';
export * from './oru';
export * from './mllp/framing';
export * from './mllp/server';
export * from './mllp/client';
export * from './order-response';
