import { assertServicesUp } from './services.ts';

export default async function setup(): Promise<void> {
  await assertServicesUp();
}
