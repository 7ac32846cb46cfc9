export * from './admin.module';
export * from './openapi';
export { ensureFirstAdmin, createAdminUser } from './auth/first-admin';
export { hashPassword, verifyPassword } from './auth/password';
export { MLLP_STATS, type MllpStats, type MllpStatsSource } from './health/mllp-stats';
export { ORDER_ACTIONS, type OrderActionsPort, type ActionOutcome } from './actions/order-actions.port';
