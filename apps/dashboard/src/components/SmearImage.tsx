import { useState } from 'react';
import type { HeatSpot } from '../api';

const PALETTE = ['#ffd400', '#00e5ff', '#ff4081', '#76ff03', '#ff9100', '#e040fb'];

/**
 * The image with the report's heat-map circles drawn over it. The SVG's viewBox is the image's own
 * pixel size, so spots given in image pixels land on the right cells at any display size.
 */
export function SmearImage({
  url,
  name,
  spots,
  findings,
}: {
  url: string;
  name: string;
  spots: HeatSpot[];
  findings: string[];
}) {
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  const [large, setLarge] = useState(false);
  const colour = (f: string) => PALETTE[Math.max(0, findings.indexOf(f)) % PALETTE.length];
  return (
    <figure className={large ? 'smear large' : 'smear'}>
      <div
        className="smear-frame"
        onClick={() => setLarge((l) => !l)}
        title={large ? 'Click to shrink' : 'Click to enlarge'}
      >
        <img
          src={url}
          alt={name}
          onLoad={(e) => setSize({ w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })}
        />
        {size && spots.length > 0 && (
          <svg
            className="heatmap"
            viewBox={`0 0 ${size.w} ${size.h}`}
            preserveAspectRatio="none"
            aria-label={`Heat map: ${spots.length} spots`}
            role="img"
          >
            {spots.map((s, i) => (
              <circle
                key={i}
                className="heat-spot"
                data-finding={s.finding}
                cx={s.x}
                cy={s.y}
                r={s.r}
                fill="none"
                stroke={colour(s.finding)}
                strokeWidth={Math.max(2, size.w / 300)}
              >
                <title>{s.finding}</title>
              </circle>
            ))}
          </svg>
        )}
      </div>
      <figcaption>
        {name}
        {spots.length > 0 && <span className="muted"> · {spots.length} heat-map spots</span>}
      </figcaption>
    </figure>
  );
}
