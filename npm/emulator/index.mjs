// The ES module face of index.js: `import { startEmulator } from '@blobjobs/emulator'`.
import api from './index.js';

export const { startEmulator, binaryPath } = api;
export default api;
