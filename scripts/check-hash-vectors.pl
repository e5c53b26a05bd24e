#!/usr/bin/perl
# Checks test/fixtures/hashing-vectors.json with an independent MurmurHash3 implementation:
# Digest::MurmurHash3::PurePerl (Debian: apt-get install libdigest-murmurhash3-pureperl-perl).
#   perl scripts/check-hash-vectors.pl test/fixtures/hashing-vectors.json
# Exits 1 on any disagreement. Not part of `npm test` (it needs the Perl module).
use strict;
use warnings;
use JSON::PP;
use Digest::MurmurHash3::PurePerl qw(murmur32);

local $/;
open my $fh, '<:raw', $ARGV[0] // 'test/fixtures/hashing-vectors.json' or die "cannot open: $!";
my $fixture = decode_json(<$fh>);
my ($ok, $bad) = (0, 0);
for my $v (@{ $fixture->{vectors} }) {
  # murmur32 UTF-8-encodes its (character string) argument itself.
  my $h = murmur32($v->{input}, 0);
  my $bucket = int($h * $fixture->{bucketScale} / 4294967296);
  if ($h == $v->{murmur3} && $bucket == $v->{bucket}) { $ok++ }
  else { $bad++; binmode STDOUT, ':utf8'; print "MISMATCH $v->{input}: $h/$v->{murmur3} $bucket/$v->{bucket}\n" }
}
print "Digest::MurmurHash3::PurePerl agrees on $ok vectors, disagrees on $bad\n";
exit($bad == 0 ? 0 : 1);
