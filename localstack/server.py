"""moto's server with DynamoDB requests applied one at a time.

moto 5.2.5 applies a TransactWriteItems by deep-copying the table, writing,
and on a failed condition restoring that copy -- which also erases every
write other requests made to the table in between. Real DynamoDB isolates
transactions (serializable with respect to other writes), and docket's
exactly-once counting relies on it. Holding one lock per DynamoDB request
gives the emulator that isolation; S3 and SQS requests (including SQS long
polls) are not serialized.

Arguments are moto_server's (`-H HOST -p PORT`).
"""

import threading

from moto import server
from moto.dynamodb.responses import DynamoHandler

_dynamodb = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized(self):
    with _dynamodb:
        return _call_action(self)


DynamoHandler.call_action = _serialized

if __name__ == "__main__":
    server.main()
