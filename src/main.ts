/** Entry point of the server alone (the CLI's `convmark serve` runs the same). */
import { serve } from "./serve.js";

await serve(process.env);
