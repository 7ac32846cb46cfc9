import { InitialSchema1764270000000 } from './1764270000000-initial-schema';

/** Every migration, oldest first. Landed migrations are never edited: add a new class. */
export const MIGRATIONS = [InitialSchema1764270000000];
