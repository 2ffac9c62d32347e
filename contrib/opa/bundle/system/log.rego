# Decision-log masking: a key released by value never reaches OPA's decision log.
package system.log

import rego.v1

mask contains "/result/key/value"
